"""Holdout: a stable share of contacts leaves into a recorded control group,
sent nothing more, and their conversions still count for the lift."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from contacts.models import Contact
from contacts.services import event_track
from contacts.services.events import events_dispatch
from journeys.models import Enrollment, HoldoutStep, StepRun
from journeys.services.exchange import journey_export, journey_import
from journeys.services.runner import enrollments_advance
from journeys.services.scheduling import enrollments_claim_due
from messaging.models import Message
from tests.factories import ExitStepFactory, JourneyFactory, SendMessageStepFactory

# Sends happen outside transactions, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def advance_all():
    while claim := enrollments_claim_due(enqueue=False, limit=1000):
        enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)


def enter(first, contacts, *, at=None):
    at = at or timezone.now()
    Enrollment.objects.bulk_create(
        Enrollment(journey=first.journey, contact=c, current_step=first, next_run_at=at,
                   entered_at=at)
        for c in contacts
    )  # fmt: skip


@pytest.fixture
def promo():
    journey = JourneyFactory(name="Promo", goal_event_name="purchase", goal_window_days=7)
    holdout = HoldoutStep.objects.create(journey=journey, key="control", position=1, percent=20)
    SendMessageStepFactory(journey=journey, key="offer", position=2)
    ExitStepFactory(journey=journey, key="done", position=3)
    return holdout


def test_a_stable_share_is_held_out_and_sent_nothing(promo, smtp_server):
    contacts = Contact.objects.bulk_create(Contact(email=f"c{i}@example.com") for i in range(600))
    enter(promo, contacts)

    advance_all()

    held = Enrollment.objects.filter(holdout=True)
    # Exactly the contacts the step's draw holds out (the draw hashes the
    # journey, the step and the contact: which ids these are varies by run)
    assert set(held.values_list("contact_id", flat=True)) == {
        contact.pk for contact in contacts if promo.held_out(contact.pk)
    }
    # and the draw holds out its share: of 100,000 contact ids, 20 % to within
    # 1 % (eight standard deviations: a share of 600 contacts varies by 1.6 %)
    drawn = sum(promo.held_out(contact_id) for contact_id in range(1, 100_001))
    assert drawn / 100_000 == pytest.approx(0.2, abs=0.01)
    assert held.exists()
    assert set(held.values_list("state", flat=True)) == {Enrollment.State.EXITED}
    assert set(held.values_list("exit_reason", flat=True)) == {"holdout: in the control group"}
    held_ids = set(held.values_list("contact_id", flat=True))
    sent_to = set(Message.objects.values_list("contact_id", flat=True))
    assert not held_ids & sent_to
    assert len(sent_to) == len(contacts) - len(held_ids)
    assert all(promo.held_out(contact_id) for contact_id in held_ids)
    assert set(
        StepRun.objects.filter(step=promo).exclude(enrollment__holdout=True)
        .values_list("branch", flat=True)
    ) == {"treatment"}  # fmt: skip


def test_goal_events_count_for_the_holdout_and_the_treated_within_the_window(promo, smtp_server):
    contacts = Contact.objects.bulk_create(Contact(email=f"g{i}@example.com") for i in range(60))
    enter(promo, contacts)
    advance_all()
    held = Enrollment.objects.filter(holdout=True).first()
    treated = Enrollment.objects.filter(holdout=False).first()
    assert held and treated.state == Enrollment.State.COMPLETED

    # Both convert after leaving the journey, within its seven days
    for enrollment in (held, treated):
        event_track(email=enrollment.contact.email, name="purchase")
    events_dispatch()

    held.refresh_from_db(), treated.refresh_from_db()
    assert held.goal_reached_at is not None
    assert treated.goal_reached_at is not None


def test_a_goal_after_the_conversion_window_is_not_a_conversion(promo, smtp_server):
    contacts = Contact.objects.bulk_create(Contact(email=f"w{i}@example.com") for i in range(5))
    enter(promo, contacts, at=timezone.now() - timedelta(days=8))
    advance_all()

    event_track(email=contacts[0].email, name="purchase")
    events_dispatch()

    assert not Enrollment.objects.filter(goal_reached_at__isnull=False).exists()


@pytest.mark.parametrize("percent", [0, 51])
def test_a_holdout_keeps_between_1_and_50_percent(percent):
    step = HoldoutStep(journey=JourneyFactory(), key="h", position=1, percent=percent)

    with pytest.raises(ValidationError, match="Hold out 1 to 50 percent"):
        step.full_clean()


def test_a_holdout_and_the_conversion_window_round_trip(promo):
    document = journey_export(journey=promo.journey)

    copy = journey_import(document=document, name="Promo (copy)")

    assert copy.goal_window_days == 7
    assert journey_export(journey=copy) == {**document, "name": "Promo (copy)"}
    assert document["steps"][0] == {"key": "control", "type": "holdout", "percent": 20}


def test_a_batch_at_a_holdout_is_drawn_in_one_pass_without_queries(promo):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from journeys.services.graph import JourneySteps
    from journeys.services.runner import StepContext

    steps = JourneySteps.load(promo.journey_id)
    contacts = Contact.objects.bulk_create(Contact(email=f"b{i}@example.com") for i in range(50))
    runs = [
        StepContext(enrollment=Enrollment(journey=promo.journey, entered_at=timezone.now()),
                    contact=c, steps=steps, now=timezone.now())
        for c in contacts
    ]  # fmt: skip

    with CaptureQueriesContext(connection) as captured:
        outcomes = steps.by_id[promo.pk].execute_many(runs)

    assert len(captured) == 0
    held = [type(o).__name__ == "Holdout" for o in outcomes]
    assert held == [promo.held_out(c.pk) for c in contacts]
