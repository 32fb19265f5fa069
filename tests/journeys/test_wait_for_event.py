"""Wait for event: a named event (with data, or correlated with the trigger), or
an engagement with an earlier message; a timeout branch; woken set-based."""

import uuid
from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Contact, Event
from contacts.services import event_track
from contacts.services.events import events_dispatch
from journeys.models import Enrollment, Journey, StepRun, WaitForEventStep, Wakeup
from journeys.services.entry import journeys_handle_events
from journeys.services.exchange import journey_export, journey_import
from journeys.services.graph import step_connect
from journeys.services.runner import enrollments_advance
from journeys.services.scheduling import enrollments_claim_due, scheduler_tick
from messaging.models import Engagement, Message
from messaging.services.engagement import engagement_record
from tests.factories import ExitStepFactory, JourneyFactory, SendMessageStepFactory

pytestmark = pytest.mark.django_db(transaction=True)


def advance_all(now=None):
    while claim := enrollments_claim_due(enqueue=False, limit=1000, now=now):
        enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)


def enter(first, contacts, *, data=None):
    now = timezone.now()
    return Enrollment.objects.bulk_create(
        Enrollment(journey=first.journey, contact=c, current_step=first, next_run_at=now,
                   entered_at=now, trigger_data=data or {})
        for c in contacts
    )  # fmt: skip


def track(contact, name, **data):
    event_track(email=contact.email, name=name, data=data)
    events_dispatch()


@pytest.fixture
def cart():
    """Abandoned cart: wait a day for the purchase of the same cart, else remind."""
    journey = JourneyFactory(name="Cart", trigger_event_name="cart_updated")
    wait = WaitForEventStep.objects.create(
        journey=journey, key="bought", position=1, event_name="purchase",
        correlation_key="cartId", timeout_amount=1, timeout_unit="days",
    )  # fmt: skip
    thanks = ExitStepFactory(journey=journey, key="thanks", position=2)
    remind = ExitStepFactory(journey=journey, key="remind", position=3)
    step_connect(step=wait, targets={"event": thanks, "timeout": remind})
    return wait


def branch_of(enrollment):
    return (
        StepRun.objects.filter(enrollment=enrollment, branch__in=["event", "timeout"])
        .values_list("branch", flat=True)
        .last()
    )


def test_the_awaited_event_wakes_the_contact_down_the_event_branch(cart):
    ada = Contact.objects.create(email="ada@example.com")
    (enrollment,) = enter(cart, [ada], data={"cartId": "c-1"})
    advance_all()
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.wait_event_name) == ("waiting", "purchase")

    track(ada, "purchase", cartId="c-1")
    assert Wakeup.objects.get().enrollment_id == enrollment.pk
    advance_all()

    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED
    assert branch_of(enrollment) == "event"
    assert StepRun.objects.filter(enrollment=enrollment, step__key="thanks").exists()
    assert enrollment.wait_event_name == "" and not Wakeup.objects.exists()


def test_an_event_of_another_cart_does_not_count_and_the_timeout_branch_follows(cart):
    ada = Contact.objects.create(email="ada@example.com")
    (enrollment,) = enter(cart, [ada], data={"cartId": "c-1"})
    advance_all()

    track(ada, "purchase", cartId="c-2")
    advance_all()
    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.WAITING

    later = timezone.now() + timedelta(days=1, minutes=1)
    with time_machine.travel(later, tick=False):
        advance_all(now=later)

    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED
    assert branch_of(enrollment) == "timeout"
    assert StepRun.objects.filter(enrollment=enrollment, step__key="remind").exists()


@pytest.fixture
def upgrade():
    """Wait two days for a change to the pro plan."""
    journey = JourneyFactory(name="Upgrade")
    wait = WaitForEventStep.objects.create(
        journey=journey, key="upgraded", position=1, event_name="plan_changed",
        data_filter={"plan": "pro"}, timeout_amount=2, timeout_unit="days",
    )  # fmt: skip
    ExitStepFactory(journey=journey, key="end", position=2)
    return wait


def test_an_event_with_data_that_fails_the_filter_wakes_then_waits_on(upgrade):
    ada = Contact.objects.create(email="ada@example.com")
    (enrollment,) = enter(upgrade, [ada])
    advance_all()
    timeout_at = Enrollment.objects.get().wait_timeout_at

    track(ada, "plan_changed", plan="basic")
    advance_all()
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.wait_timeout_at) == ("waiting", timeout_at)

    track(ada, "plan_changed", plan="pro")
    advance_all()
    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED
    assert branch_of(enrollment) == "event"


def test_an_event_before_the_contact_reached_the_step_does_not_count(cart):
    ada = Contact.objects.create(email="ada@example.com")
    track(ada, "purchase", cartId="c-1")
    (enrollment,) = enter(cart, [ada], data={"cartId": "c-1"})

    advance_all()

    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.WAITING


def test_an_event_dispatched_before_the_wait_was_recorded_still_counts(cart):
    # The contact is due at the wait step; the event arrives and is dispatched
    # before any worker has run the step (no waiting enrollment to wake yet).
    ada = Contact.objects.create(email="ada@example.com")
    (enrollment,) = enter(cart, [ada], data={"cartId": "c-1"})
    track(ada, "purchase", cartId="c-1")

    advance_all()

    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED
    assert branch_of(enrollment) == "event"


def test_events_wake_waiting_contacts_in_one_statement_for_n_or_2n(cart):
    def queries_to_wake(n):
        contacts = Contact.objects.bulk_create(
            Contact(email=f"w{n}-{i}@example.com") for i in range(n)
        )
        enter(cart, contacts, data={"cartId": "same"})
        advance_all()
        events = Event.objects.bulk_create(
            Event(contact=c, name="purchase", data={"cartId": "same"},
                  occurred_at=timezone.now())
            for c in contacts
        )  # fmt: skip
        with CaptureQueriesContext(connection) as captured:
            result = journeys_handle_events(events=events)
        assert result["woken"] == n
        return len(captured)

    assert queries_to_wake(10) == queries_to_wake(20)


def test_claiming_woken_contacts_costs_the_same_for_n_or_2n(cart):
    def queries_to_claim(n):
        contacts = Contact.objects.bulk_create(
            Contact(email=f"c{n}-{i}@example.com") for i in range(n)
        )
        enter(cart, contacts, data={"cartId": "same"})
        advance_all()
        for contact in contacts:
            event_track(email=contact.email, name="purchase", data={"cartId": "same"})
        events_dispatch()
        with CaptureQueriesContext(connection) as captured:
            claim = enrollments_claim_due(enqueue=False)
        assert len(claim.enrollment_ids) == n
        enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)
        return len(captured)

    assert queries_to_claim(3) == queries_to_claim(6)


@pytest.fixture
def follow_up(smtp_server):
    """Send an offer, then wait two days for it to be opened."""
    journey = JourneyFactory(name="Offer")
    send = SendMessageStepFactory(journey=journey, key="offer", position=1)
    wait = WaitForEventStep.objects.create(
        journey=journey, key="opened", position=2, engagement="opened", engagement_step=send,
        timeout_amount=2, timeout_unit="days",
    )  # fmt: skip
    ExitStepFactory(journey=journey, key="engaged", position=3)
    ExitStepFactory(journey=journey, key="silent", position=4)
    step_connect(step=wait, targets={"event": journey.steps.get(key="engaged"),
                                     "timeout": journey.steps.get(key="silent")})  # fmt: skip
    return send


def test_opening_the_journeys_earlier_message_wakes_the_wait(follow_up):
    ada = Contact.objects.create(email="ada@example.com")
    (enrollment,) = enter(follow_up, [ada])
    advance_all()
    enrollment.refresh_from_db()
    message = Message.objects.get(contact=ada)
    assert (enrollment.wait_event_name, enrollment.wait_value) == ("emailOpen", str(message.pk))

    engagement_record(message=message, kind=Engagement.Kind.OPENED, source="pixel")
    events_dispatch()
    advance_all()

    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED
    assert branch_of(enrollment) == "event"


def test_a_contact_sent_nothing_cannot_open_it_and_takes_the_timeout_at_once(follow_up):
    ada = Contact.objects.create(email="ada@example.com", blocklisted=True)
    (enrollment,) = enter(follow_up, [ada])

    advance_all()

    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED
    assert branch_of(enrollment) == "timeout"


def test_a_wait_for_an_engagement_round_trips_naming_its_send_step_by_key(follow_up):
    document = journey_export(journey=follow_up.journey)

    copy = journey_import(document=document, name="Offer (copy)")

    assert journey_export(journey=copy) == {**document, "name": "Offer (copy)"}
    wait = next(step for step in document["steps"] if step["type"] == "wait_for_event")
    assert (wait["engagement"], wait["engagement_step"]) == ("opened", "offer")
    assert WaitForEventStep.objects.get(journey=copy).engagement_step.journey_id == copy.pk


def test_an_event_during_a_pause_is_kept_and_taken_when_the_journey_resumes(cart):
    ada = Contact.objects.create(email="ada@example.com")
    (enrollment,) = enter(cart, [ada], data={"cartId": "c-1"})
    advance_all()
    Journey.objects.filter(pk=cart.journey_id).update(state=Journey.State.PAUSED)

    track(ada, "purchase", cartId="c-1")
    later = timezone.now() + timedelta(days=2)
    with time_machine.travel(later, tick=False):
        advance_all(now=later)  # paused: nobody moves, though the timeout has passed
        enrollment.refresh_from_db()
        assert enrollment.state == Enrollment.State.WAITING
        Journey.objects.filter(pk=cart.journey_id).update(state=Journey.State.LIVE)
        advance_all(now=later)

    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED
    assert branch_of(enrollment) == "event"


def test_a_later_event_that_passes_the_filter_counts_when_the_first_to_wake_did_not(upgrade):
    ada = Contact.objects.create(email="ada@example.com")
    (enrollment,) = enter(upgrade, [ada])
    advance_all()

    # Both dispatched in one batch: the first wakes the contact, and is noted.
    event_track(email=ada.email, name="plan_changed", data={"plan": "basic"})
    event_track(email=ada.email, name="plan_changed", data={"plan": "pro"})
    events_dispatch()
    advance_all()

    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED
    assert branch_of(enrollment) == "event"


def test_woken_contacts_are_claimed_before_those_merely_due(cart):
    ada, bob = (Contact.objects.create(email=f"{n}@example.com") for n in ("ada", "bob"))
    woken, _ = enter(cart, [ada, bob], data={"cartId": "c-1"})
    advance_all()
    Enrollment.objects.exclude(pk=woken.pk).update(next_run_at=timezone.now())  # bob is due
    track(ada, "purchase", cartId="c-1")

    claim = enrollments_claim_due(enqueue=False, limit=1)

    assert claim.enrollment_ids == [woken.pk]


def test_a_woken_contact_whose_worker_died_is_claimed_again_and_goes_down_the_event_branch(cart):
    ada = Contact.objects.create(email="ada@example.com")
    (enrollment,) = enter(cart, [ada], data={"cartId": "c-1"})
    advance_all()
    track(ada, "purchase", cartId="c-1")
    lost = enrollments_claim_due(enqueue=False)  # its worker is killed before it runs
    assert lost.enrollment_ids == [enrollment.pk]
    assert enrollments_claim_due(enqueue=False) is None  # leased meanwhile

    later = timezone.now() + timedelta(minutes=10)
    with time_machine.travel(later, tick=False):
        advance_all(now=later)

    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED
    assert branch_of(enrollment) == "event"


def test_a_wake_up_is_kept_when_the_lease_is_lost_while_the_step_runs(cart):
    ada = Contact.objects.create(email="ada@example.com")
    (enrollment,) = enter(cart, [ada], data={"cartId": "c-1"})
    advance_all()
    track(ada, "purchase", cartId="c-1")
    claim = enrollments_claim_due(enqueue=False)
    came = WaitForEventStep._came

    def taken_over_meanwhile(step, run, event):
        Enrollment.objects.filter(pk=enrollment.pk).update(lease_token=uuid.uuid4())
        return came(step, run, event)

    with mock.patch.object(
        WaitForEventStep, "_came", autospec=True, side_effect=taken_over_meanwhile
    ):
        counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)

    assert counts == {"lease_lost": 1}
    assert Wakeup.objects.filter(enrollment=enrollment).exists()  # for whoever holds it now
    assert Enrollment.objects.get().state == Enrollment.State.WAITING


def test_a_wake_up_left_by_a_contact_who_exited_another_way_is_swept(cart):
    ada = Contact.objects.create(email="ada@example.com")
    (enrollment,) = enter(cart, [ada], data={"cartId": "c-1"})
    advance_all()
    track(ada, "purchase", cartId="c-1")
    Enrollment.objects.filter(pk=enrollment.pk).update(
        state=Enrollment.State.EXITED, current_step=None, next_run_at=None
    )  # staff exited the contact before the scheduler's pass

    scheduler_tick()

    assert not Wakeup.objects.exists()
