"""The migrations that install the tallies count what is already there, so
the figures do not start from zero on upgrade; then the triggers go on."""

import pytest
from django.db.models import Sum
from django.utils import timezone

BEFORE = [("journeys", "0019_enrollment_failed_index"), ("messaging", "0007_message_resent")]
AFTER = [("journeys", "0020_journey_tallies"), ("messaging", "0008_message_tallies")]


@pytest.mark.django_db(transaction=True)
def test_passages_step_runs_and_messages_from_before_the_upgrade_are_counted_once(migrator):
    apps = migrator.loader.project_state(BEFORE).apps
    Journey = apps.get_model("journeys", "Journey")
    Step = apps.get_model("journeys", "Step")
    Contact = apps.get_model("contacts", "Contact")
    Enrollment = apps.get_model("journeys", "Enrollment")
    StepRun = apps.get_model("journeys", "StepRun")
    Channel = apps.get_model("subscriptions", "Channel")
    MessageType = apps.get_model("subscriptions", "MessageType")
    Template = apps.get_model("messaging", "Template")
    Message = apps.get_model("messaging", "Message")
    now = timezone.now()
    journey = Journey.objects.create(name="Before")
    step = Step.objects.create(journey=journey, key="ab", position=1)
    for n in range(3):
        passage = Enrollment.objects.create(
            journey=journey, contact=Contact.objects.create(email=f"c{n}@example.com"),
            state="completed", entered_at=now, finished_at=now,
            goal_reached_at=now if n == 0 else None,
        )  # fmt: skip
        StepRun.objects.create(enrollment=passage, step=step, sequence=0, outcome="continued",
                               branch="a", started_at=now, finished_at=now)  # fmt: skip
    channel = Channel.objects.create(name="Email", medium="email")
    template = Template.objects.create(
        name="T", message_type=MessageType.objects.create(channel=channel, name="News")
    )
    for key in ("m1", "m2"):
        Message.objects.create(
            contact=Contact.objects.get(email="c0@example.com"), template=template,
            message_type=template.message_type, channel=channel, medium="email",
            origin="journey", idempotency_key=key, status="sent", sent_at=now,
        )  # fmt: skip

    migrator.loader.build_graph()
    migrator.migrate(AFTER)

    apps = migrator.loader.project_state(AFTER).apps
    JourneyTally = apps.get_model("journeys", "JourneyTally")
    MessageTally = apps.get_model("messaging", "MessageTally")

    def sums(rows):
        return dict(rows.values_list("metric").annotate(n=Sum("n")))

    assert sums(JourneyTally.objects.filter(step_id=None)) == {
        "entered": 3, "completed": 3, "converted": 1,
    }  # fmt: skip
    assert sums(JourneyTally.objects.filter(step_id=step.pk)) == {
        "reached": 3, "branch:a": 3, "branch_converted:a": 1,
    }  # fmt: skip
    assert sums(MessageTally.objects.all()) == {"sent": 2}
