"""Re-entry policies hold when one contact's events arrive all at once:
parallel requests to events/track, then parallel dispatchers, each in its own
thread and database connection against PostgreSQL."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from contacts.models import Event
from contacts.services import api_key_create
from contacts.services.events import events_dispatch
from journeys.models import Enrollment, Journey
from journeys.services.entry import journeys_enroll_contact
from tests.databases import PARALLEL_WRITERS
from tests.factories import ContactFactory, JourneyFactory, SendMessageStepFactory

pytestmark = pytest.mark.django_db(transaction=True)

PARALLEL = 6


def in_threads(work, count=PARALLEL):
    """Run `work(i)` in `count` threads released together; re-raise what fails."""
    barrier = threading.Barrier(count)
    failures = []

    def run(i):
        try:
            barrier.wait(timeout=30)
            work(i)
        except Exception as exc:  # reported below, in the test's own thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []


def journey(reentry, **fields):
    journey = JourneyFactory(trigger_event_name="purchase", reentry=reentry, **fields)
    SendMessageStepFactory(journey=journey, key="thanks", position=1)
    return journey


def purchases_at_once(rq_queue):
    """PARALLEL purchase events for one contact, tracked and dispatched in parallel."""
    _, key = api_key_create(name="parallel")
    ContactFactory(email="ada@example.com")

    def track(i):
        client = APIClient()
        client.credentials(HTTP_API_KEY=key)
        response = client.post(
            "/api/events/track",
            {"email": "ada@example.com", "eventName": "purchase", "dataFields": {"n": i}},
            format="json",
        )
        assert response.status_code == 200

    in_threads(track)
    assert Event.objects.filter(dispatched=False).count() == PARALLEL
    # Each dispatcher claims one event (SKIP LOCKED) and enrolls at the same moment.
    in_threads(lambda i: events_dispatch(limit=1))
    assert not Event.objects.filter(dispatched=False).exists()
    rq_queue.empty()


@pytest.mark.postgresql(reason=PARALLEL_WRITERS)
@pytest.mark.parametrize(
    ("reentry", "allowed"),
    [
        (Journey.Reentry.NEVER, 1),
        (Journey.Reentry.AFTER_EXIT, 1),
        (Journey.Reentry.PERIOD, 1),
        (Journey.Reentry.ALWAYS, PARALLEL),
    ],
)
def test_parallel_events_for_one_contact_enter_as_often_as_the_policy_allows(
    rq_queue, reentry, allowed
):
    purchased = journey(reentry, reentry_period_days=30)

    purchases_at_once(rq_queue)

    passages = purchased.enrollments.all()
    assert passages.count() == allowed
    assert passages.filter(state=Enrollment.State.ACTIVE).count() == allowed
    if reentry == Journey.Reentry.ALWAYS:  # each passage carries its own event
        assert sorted(p.trigger_data["n"] for p in passages) == list(range(PARALLEL))


@pytest.mark.postgresql(reason=PARALLEL_WRITERS)
def test_parallel_api_triggers_for_one_contact_enter_once(rq_queue):
    once = journey(Journey.Reentry.AFTER_EXIT)
    contact = ContactFactory(email="bob@example.com")

    in_threads(lambda i: journeys_enroll_contact(journey=once, contact=contact))

    assert once.enrollments.count() == 1


def test_once_per_period_waits_out_the_period_after_a_passage_ends(db):
    monthly = journey(Journey.Reentry.PERIOD, reentry_period_days=30)
    contact = ContactFactory()
    start = timezone.now()

    first = journeys_enroll_contact(journey=monthly, contact=contact, now=start)
    Enrollment.objects.filter(pk=first.pk).update(state=Enrollment.State.COMPLETED)
    too_soon = journeys_enroll_contact(
        journey=monthly, contact=contact, now=start + timedelta(days=29)
    )
    later = journeys_enroll_contact(
        journey=monthly, contact=contact, now=start + timedelta(days=31)
    )

    assert too_soon is None
    assert later is not None
    assert monthly.enrollments.count() == 2


def test_after_exit_takes_a_contact_again_once_the_passage_ended(db):
    again = journey(Journey.Reentry.AFTER_EXIT)
    contact = ContactFactory()

    first = journeys_enroll_contact(journey=again, contact=contact)
    while_open = journeys_enroll_contact(journey=again, contact=contact)
    Enrollment.objects.filter(pk=first.pk).update(state=Enrollment.State.EXITED)
    after = journeys_enroll_contact(journey=again, contact=contact)

    assert (while_open, after is not None) == (None, True)


def test_never_takes_a_contact_once_even_after_the_passage_ended(db):
    once = journey(Journey.Reentry.NEVER)
    contact = ContactFactory()

    first = journeys_enroll_contact(journey=once, contact=contact)
    Enrollment.objects.filter(pk=first.pk).update(state=Enrollment.State.COMPLETED)

    assert journeys_enroll_contact(journey=once, contact=contact) is None


def test_once_per_period_needs_its_period():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="how many days"):
        Journey(name="Monthly", reentry=Journey.Reentry.PERIOD).full_clean()
