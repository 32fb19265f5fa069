"""Migration 0021: why a passage exited becomes a column (Enrollment.exit_kind)
that the tally triggers read. The passages that had exited get their kind
from their exit_reason, as the triggers of 0020 read it, and the tallies
count none of them twice."""

import pytest
from django.db.models import Sum
from django.utils import timezone

BEFORE = [("journeys", "0020_journey_tallies")]
AFTER = [("journeys", "0021_enrollment_exit_kind")]

REASONS = {
    "exit event: cancelled": "exit_event",
    "no longer in the journey's audience": "audience",
    "The journey was archived.": "archived",
    "contact forgotten": "forgotten",
    "exited from the admin by alice": "admin",
    "exit step": "other",
}


def sums(JourneyTally):
    rows = JourneyTally.objects.filter(step_id=None).values_list("metric").annotate(n=Sum("n"))
    return dict(rows)


@pytest.mark.django_db(transaction=True)
def test_passages_that_had_exited_get_their_kind_and_are_counted_once(migrator):
    apps = migrator.loader.project_state(BEFORE).apps
    Journey = apps.get_model("journeys", "Journey")
    Contact = apps.get_model("contacts", "Contact")
    Enrollment = apps.get_model("journeys", "Enrollment")
    JourneyTally = apps.get_model("journeys", "JourneyTally")
    now = timezone.now()
    journey = Journey.objects.create(name="Before")
    passages = {}
    for n, reason in enumerate([*REASONS, "holdout: in the control group"]):
        passages[reason] = Enrollment.objects.create(
            journey=journey, contact=Contact.objects.create(email=f"c{n}@example.com"),
            state="exited", exit_reason=reason, holdout=reason.startswith("holdout"),
            entered_at=now, finished_at=now,
        )  # fmt: skip
    counted = sums(JourneyTally)

    migrator.loader.build_graph()
    migrator.migrate(AFTER)

    apps = migrator.loader.project_state(AFTER).apps
    Enrollment = apps.get_model("journeys", "Enrollment")
    JourneyTally = apps.get_model("journeys", "JourneyTally")
    kinds = dict(Enrollment.objects.values_list("exit_reason", "exit_kind"))
    assert kinds == {**REASONS, "holdout: in the control group": "holdout"}
    assert counted == {
        "entered": 7, "holdout": 1,
        **{f"exited:{kind}": 1 for kind in [*REASONS.values(), "holdout"]},
    }  # fmt: skip
    assert sums(JourneyTally) == counted
    # and a later change to one of them is counted from its kind: reaching
    # the goal adds a conversion, and nothing else moves
    Enrollment.objects.filter(exit_reason="contact forgotten").update(goal_reached_at=now)
    assert sums(JourneyTally) == {**counted, "converted": 1}
