"""Journey passages on a contact's timeline (journeys.timeline)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from journeys.models import Enrollment, StepRun
from journeys.timeline import STEP_RUNS_SHOWN
from messaging.models import Message
from tests.admin_pages import contact_timeline
from tests.factories import (
    ConditionStepFactory,
    ContactFactory,
    DelayStepFactory,
    EnrollmentFactory,
    JourneyFactory,
    MessageFactory,
    SendMessageStepFactory,
    StepRunFactory,
)

pytestmark = pytest.mark.django_db


def test_a_passage_shows_the_path_taken_step_by_step(admin_client):
    contact = ContactFactory()
    journey = JourneyFactory(name="Onboarding")
    send = SendMessageStepFactory(journey=journey, key="welcome", name="Welcome email")
    check = ConditionStepFactory(journey=journey, key="created", name="Created a project?")
    wait = DelayStepFactory(journey=journey, key="wait", name="Wait two days")
    start = timezone.now() - timedelta(days=3)
    enrollment = EnrollmentFactory(
        contact=contact, journey=journey, entered_at=start, current_step=wait,
        state=Enrollment.State.WAITING,
    )  # fmt: skip
    message = MessageFactory(
        contact=contact, status=Message.Status.SKIPPED, skip_reason="not_opted_in"
    )
    for sequence, (step, outcome, branch, sent) in enumerate(
        [
            (send, StepRun.Outcome.CONTINUED, "", message),
            (check, StepRun.Outcome.CONTINUED, "no", None),
            (wait, StepRun.Outcome.WAITING, "", None),
        ]
    ):
        StepRunFactory(
            enrollment=enrollment, step=step, sequence=sequence, outcome=outcome,
            branch=branch, message=sent, started_at=start + timedelta(minutes=sequence),
        )  # fmt: skip

    body = contact_timeline(admin_client, contact)

    url = reverse("admin:journeys_enrollment_change", args=[enrollment.pk])
    assert f'<a href="{url}">Onboarding</a> — <span class="passage-state">Waiting' in body
    assert "Now at: Wait two days" in body
    path = body[body.index('<ol class="passage-path">') : body.index("</ol>")]
    steps = [line.split("<strong>")[1].split("</strong>")[0] for line in path.split("<li>")[1:]]
    assert steps == ["Welcome email", "Created a project?", "Wait two days"]
    assert "→ Continued, message skipped: never subscribed to an opt-in message type" in path
    assert "→ Continued (branch “no”)" in path
    assert "→ Waiting" in path


def test_a_finished_passage_says_how_it_ended(admin_client):
    contact = ContactFactory()
    EnrollmentFactory(
        contact=contact,
        state=Enrollment.State.EXITED,
        finished_at=timezone.now(),
        exit_reason="unsubscribed",
    )

    body = contact_timeline(admin_client, contact)

    assert "Exited" in body
    assert "(unsubscribed)" in body


def test_a_long_passage_shows_its_first_steps_only(admin_client):
    contact = ContactFactory()
    enrollment = EnrollmentFactory(contact=contact)
    step = DelayStepFactory(journey=enrollment.journey)
    now = timezone.now()
    runs = [
        StepRun(enrollment=enrollment, step=step, sequence=i, outcome="continued",
                started_at=now, finished_at=now)
        for i in range(STEP_RUNS_SHOWN + 5)
    ]  # fmt: skip
    StepRun.objects.bulk_create(runs)

    body = contact_timeline(admin_client, contact)

    assert body.count("→ Continued") == STEP_RUNS_SHOWN
    assert "Only the first steps are shown" in body
