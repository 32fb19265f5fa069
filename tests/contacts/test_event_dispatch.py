"""New events reach journeys after the request, in batches, and a listener's failure
never fails the request nor holds other events back."""

import logging

import pytest
from django.core.management import call_command

from contacts.models import Event
from contacts.services import event_track, events_dispatch, events_dispatch_all
from contacts.signals import events_recorded
from journeys.models import Enrollment
from tests.factories import JourneyFactory, SendMessageStepFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def signup_journey(db):
    journey = JourneyFactory(trigger_event_name="signed_up")
    SendMessageStepFactory(journey=journey, position=1)
    return journey


@pytest.fixture
def poisoned_listener():
    """A listener that breaks on any batch holding an event named "poison"."""

    def listener(sender, events, **kwargs):
        if any(event.name == "poison" for event in events):
            raise RuntimeError("a listener's bug")

    events_recorded.connect(listener, dispatch_uid="test.poison")
    yield
    events_recorded.disconnect(dispatch_uid="test.poison")


def test_many_events_share_one_dispatch_job(api_client, signup_journey, rq_queue, run_worker):
    for n in range(5):
        response = api_client.post(
            "/api/events/track",
            {"email": f"c{n}@example.com", "eventName": "signed_up"},
            format="json",
        )
        assert response.status_code == 200

    assert rq_queue.count == 1
    run_worker()
    assert Enrollment.objects.filter(journey=signup_journey).count() == 5
    assert not Event.objects.filter(dispatched=False).exists()


def test_an_event_just_after_a_dispatch_job_waits_for_the_schedulers_pass(
    signup_journey, rq_queue, run_worker
):
    # Given an event whose job has run
    event_track(name="signed_up", email="ada@example.com")
    run_worker()
    # When another event follows at once in the same process
    event_track(name="signed_up", email="bob@example.com")

    # Then no second job is asked for (a round trip saved per request) ...
    assert rq_queue.count == 0
    assert Event.objects.filter(dispatched=False).count() == 1
    # ... and the scheduler's next pass dispatches it
    call_command("run_scheduler", "--once")
    entered = Enrollment.objects.values_list("contact__email", flat=True)
    assert sorted(entered) == ["ada@example.com", "bob@example.com"]


def test_a_listener_that_breaks_never_fails_the_api_call(
    api_client, signup_journey, poisoned_listener, rq_queue, run_worker
):
    response = api_client.post(
        "/api/events/track", {"email": "a@example.com", "eventName": "poison"}, format="json"
    )

    assert response.status_code == 200
    assert Event.objects.get().name == "poison"


def test_an_event_listeners_break_on_is_set_aside_and_the_rest_go_on(
    signup_journey, poisoned_listener, caplog
):
    event_track(name="signed_up", email="ada@example.com")
    event_track(name="poison", email="bob@example.com")
    event_track(name="signed_up", email="cy@example.com")

    with caplog.at_level(logging.ERROR):
        result = events_dispatch()

    assert (result.events, result.failed) == (3, 1)
    entered = Enrollment.objects.values_list("contact__email", flat=True)
    assert sorted(entered) == ["ada@example.com", "cy@example.com"]
    assert not Event.objects.filter(dispatched=False).exists()
    assert "failed on event" in caplog.text


def test_events_whose_job_redis_lost_are_dispatched_by_the_scheduler(
    signup_journey, rq_queue, run_worker
):
    event_track(name="signed_up", email="ada@example.com")
    rq_queue.connection.flushdb()  # the dispatch job is gone

    call_command("run_scheduler", "--once")

    assert Enrollment.objects.get().contact.email == "ada@example.com"


def test_a_redelivered_event_is_not_dispatched_again(signup_journey):
    event_track(name="signed_up", email="ada@example.com", client_event_id="e-1")
    assert events_dispatch_all() == 1

    event_track(name="signed_up", email="ada@example.com", client_event_id="e-1")

    assert events_dispatch_all() == 0
    assert Enrollment.objects.count() == 1


def test_entry_exit_and_goal_in_a_batch_cost_the_same_for_10_or_20_contacts(signup_journey):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    signup_journey.exit_event_name = "cancelled"
    signup_journey.goal_event_name = "purchased"
    signup_journey.save()

    def queries_to_dispatch(contacts, tag):
        for n in range(contacts):
            email = f"{tag}{n}@example.com"
            event_track(name="signed_up", email=email)
        events_dispatch_all()
        for n in range(contacts):
            email = f"{tag}{n}@example.com"
            event_track(name="purchased" if n % 2 else "cancelled", email=email)
        with CaptureQueriesContext(connection) as queries:
            events_dispatch_all()
        return len(queries)

    assert queries_to_dispatch(10, "a") == queries_to_dispatch(20, "b")
    assert Enrollment.objects.filter(state="exited").count() == 15
    assert Enrollment.objects.filter(goal_reached_at__isnull=False).count() == 15
