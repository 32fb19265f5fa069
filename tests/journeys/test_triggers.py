"""Entry triggers of every kind, several per journey, and the journey's audience."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact
from contacts.services import events_dispatch_all
from journeys.models import Enrollment, Journey, JourneyTrigger
from journeys.services.editing import JourneyStateError, journey_set_state
from journeys.services.scheduling import scheduler_tick
from journeys.services.triggers import AUDIENCE_EXIT_REASON, trigger_fire, triggers_tick
from messaging.models import Message
from subscriptions.models import Channel, ConsentRecord
from subscriptions.services.consent import subscription_set
from subscriptions.services.updates import marketing_email_unsubscribe
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    ContactListFactory,
    JourneyFactory,
    JourneyTriggerFactory,
    ListMembershipFactory,
    MessageTypeFactory,
    SegmentFactory,
    SendMessageStepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

TRACK = "/api/events/track"
UPDATE_USER = "/api/users/update"
Kind = JourneyTrigger.Kind


@pytest.fixture(autouse=True)
def empty_queue(rq_queue):
    """Tracking asks for a dispatch job: each test starts and ends with an empty queue."""
    return rq_queue


def journey_with(*triggers, **fields):
    """A live journey with one send step and these triggers (dicts of trigger fields)."""
    journey = JourneyFactory(trigger_event_name="", **fields)
    SendMessageStepFactory(journey=journey, key="hello", position=1)
    for trigger in triggers:
        JourneyTriggerFactory(journey=journey, **trigger)
    return journey


def entered(journey):
    return sorted(journey.enrollments.values_list("contact__email", flat=True))


def track(api_client, email, name, data=None):
    response = api_client.post(
        TRACK, {"email": email, "eventName": name, "dataFields": data or {}}, format="json"
    )
    assert response.status_code == 200, response.content
    events_dispatch_all()


def update_user(api_client, email, data):
    response = api_client.post(UPDATE_USER, {"email": email, "dataFields": data}, format="json")
    assert response.status_code == 200, response.content


# --- events -------------------------------------------------------------------------


def test_an_event_trigger_with_a_filter_takes_only_events_whose_data_match(api_client):
    journey = journey_with(
        {"kind": Kind.EVENT, "event_name": "purchase", "event_filter": {"plan": "pro"}}
    )

    track(api_client, "ada@example.com", "purchase", {"plan": "pro", "total": 5})
    track(api_client, "bob@example.com", "purchase", {"plan": "free"})
    track(api_client, "cy@example.com", "purchase")

    assert entered(journey) == ["ada@example.com"]
    assert journey.enrollments.get().trigger_data == {"plan": "pro", "total": 5}


def test_a_filter_reaches_into_nested_event_data(api_client):
    journey = journey_with(
        {"kind": Kind.EVENT, "event_name": "order", "event_filter": {"shipping.country": "NO"}}
    )

    track(api_client, "ada@example.com", "order", {"shipping": {"country": "NO"}})
    track(api_client, "bob@example.com", "order", {"shipping": {"country": "SE"}})

    assert entered(journey) == ["ada@example.com"]


def test_a_journey_with_several_triggers_takes_contacts_from_each(api_client):
    newsletter = ContactListFactory(name="Newsletter")
    journey = journey_with(
        {"kind": Kind.EVENT, "event_name": "signed_up"},
        {"kind": Kind.EVENT, "event_name": "trial_started"},
        {"kind": Kind.LIST_JOIN, "contact_list": newsletter},
    )

    track(api_client, "ada@example.com", "signed_up")
    track(api_client, "bob@example.com", "trial_started")
    response = api_client.post(
        "/api/lists/subscribe",
        {"listId": newsletter.pk, "subscribers": [{"email": "cy@example.com"}]},
        format="json",
    )
    assert response.status_code == 200

    assert entered(journey) == ["ada@example.com", "bob@example.com", "cy@example.com"]


def test_two_triggers_set_off_by_one_event_enter_the_contact_once(api_client):
    journey = journey_with(
        {"kind": Kind.EVENT, "event_name": "purchase"},
        {"kind": Kind.EVENT, "event_name": "purchase", "event_filter": {"plan": "pro"}},
        reentry=Journey.Reentry.ALWAYS,
    )

    track(api_client, "ada@example.com", "purchase", {"plan": "pro"})

    assert entered(journey) == ["ada@example.com"]


# --- the audience ---------------------------------------------------------------------

PRO = {"attribute": "plan", "op": "eq", "value": "pro"}


def test_only_contacts_in_the_audience_enter(api_client):
    journey = journey_with({"kind": Kind.EVENT, "event_name": "signed_up"}, audience=PRO)
    ContactFactory(email="ada@example.com", attributes={"plan": "pro"})
    ContactFactory(email="bob@example.com", attributes={"plan": "free"})

    track(api_client, "ada@example.com", "signed_up")
    track(api_client, "bob@example.com", "signed_up")

    assert entered(journey) == ["ada@example.com"]


def test_a_contact_who_stops_matching_the_audience_leaves_at_the_sweep(api_client):
    journey = journey_with({"kind": Kind.EVENT, "event_name": "signed_up"}, audience=PRO)
    ContactFactory(email="ada@example.com", attributes={"plan": "pro"})
    ContactFactory(email="bob@example.com", attributes={"plan": "pro"})
    track(api_client, "ada@example.com", "signed_up")
    track(api_client, "bob@example.com", "signed_up")
    journey.enrollments.update(state=Enrollment.State.WAITING, next_run_at=None)

    update_user(api_client, "ada@example.com", {"plan": "free"})
    triggers_tick()

    ada, bob = journey.enrollments.order_by("contact__email")
    assert (ada.state, ada.exit_reason) == (Enrollment.State.EXITED, AUDIENCE_EXIT_REASON)
    assert bob.state == Enrollment.State.WAITING


def test_no_step_runs_for_a_contact_who_left_the_audience(api_client):
    journey = journey_with({"kind": Kind.EVENT, "event_name": "signed_up"}, audience=PRO)
    ContactFactory(email="ada@example.com", attributes={"plan": "pro"})
    track(api_client, "ada@example.com", "signed_up")

    update_user(api_client, "ada@example.com", {"plan": "free"})
    handed = scheduler_tick()

    assert handed == 0
    assert journey.enrollments.get().exit_reason == AUDIENCE_EXIT_REASON
    assert not Message.objects.exists()


def test_an_audience_that_is_not_a_condition_tree_is_refused():
    journey = Journey(name="Bad audience", audience={"attribute": "plan", "op": "about"})

    with pytest.raises(ValidationError, match="Not a condition tree"):
        journey.full_clean()


def test_the_admin_refuses_a_bad_audience_and_saves_nothing(client):
    client.force_login(UserFactory(is_superuser=True))
    response = client.post(
        reverse("admin:journeys_journey_add"),
        {
            "name": "Half-built",
            "reentry": "never",
            "audience": '{"all": []}',
            "triggers-TOTAL_FORMS": 0,
            "triggers-INITIAL_FORMS": 0,
            "steps-TOTAL_FORMS": 0,
            "steps-INITIAL_FORMS": 0,
        },
    )

    assert response.status_code == 200
    assert "Not a condition tree" in response.content.decode()
    assert not Journey.objects.exists()


def test_the_admin_refuses_an_incomplete_trigger_and_saves_nothing(client):
    client.force_login(UserFactory(is_superuser=True))
    response = client.post(
        reverse("admin:journeys_journey_add"),
        {
            "name": "Monthly digest",
            "reentry": "always",
            "audience": "{}",
            "triggers-TOTAL_FORMS": 1,
            "triggers-INITIAL_FORMS": 0,
            "triggers-0-kind": "schedule",
            "triggers-0-event_filter": "{}",
            "triggers-0-offset_days": 0,
            "triggers-0-every_unit": "days",
            "steps-TOTAL_FORMS": 0,
            "steps-INITIAL_FORMS": 0,
        },
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert "Say when it runs." in body
    assert "A schedule runs for one list or one segment: choose one." in body
    assert not Journey.objects.exists()
    assert not JourneyTrigger.objects.exists()


# --- segment entry ----------------------------------------------------------------------


def test_contacts_who_newly_enter_the_segment_enter_the_journey(api_client):
    pros = SegmentFactory(name="Pros", conditions=PRO)
    journey = journey_with({"kind": Kind.SEGMENT_ENTRY, "segment": pros})
    ContactFactory(email="ada@example.com", attributes={"plan": "pro"})
    ContactFactory(email="bob@example.com", attributes={"plan": "free"})
    triggers_tick()  # the first pass notes who is in the segment already
    assert entered(journey) == []

    update_user(api_client, "bob@example.com", {"plan": "pro"})
    triggers_tick()
    triggers_tick()

    assert entered(journey) == ["bob@example.com"]
    assert journey.enrollments.get().trigger_data == {"segmentId": pros.pk}


def test_leaving_and_entering_the_segment_again_enters_again_as_the_policy_allows(api_client):
    pros = SegmentFactory(name="Pros", conditions=PRO)
    journey = journey_with(
        {"kind": Kind.SEGMENT_ENTRY, "segment": pros}, reentry=Journey.Reentry.AFTER_EXIT
    )
    ContactFactory(email="ada@example.com", attributes={"plan": "free"})
    triggers_tick()
    update_user(api_client, "ada@example.com", {"plan": "pro"})
    triggers_tick()
    journey.enrollments.update(state=Enrollment.State.COMPLETED)

    update_user(api_client, "ada@example.com", {"plan": "free"})
    triggers_tick()
    update_user(api_client, "ada@example.com", {"plan": "pro"})
    triggers_tick()

    assert journey.enrollments.count() == 2


# --- schedules ----------------------------------------------------------------------------

T0 = datetime(2027, 1, 10, 0, 0, tzinfo=UTC)


def test_a_schedule_once_enters_the_lists_members_once_when_it_falls_due():
    members = ContactListFactory(name="Members")
    for email in ("ada@example.com", "bob@example.com"):
        ListMembershipFactory(contact_list=members, contact=ContactFactory(email=email))
    ContactFactory(email="outsider@example.com")
    journey = journey_with(
        {"kind": Kind.SCHEDULE, "contact_list": members, "starts_at": T0 + timedelta(hours=9)},
        reentry=Journey.Reentry.ALWAYS,  # only the watermark stops a second entry
    )

    triggers_tick(now=T0 + timedelta(hours=8))
    assert entered(journey) == []
    triggers_tick(now=T0 + timedelta(hours=9, minutes=1))
    triggers_tick(now=T0 + timedelta(hours=9, minutes=1, seconds=30))
    triggers_tick(now=T0 + timedelta(days=3))

    assert entered(journey) == ["ada@example.com", "bob@example.com"]


def test_a_recurring_schedule_at_a_local_time_enters_each_contact_at_nine_where_they_are():
    members = ContactListFactory(name="Members")
    tokyo = ContactFactory(email="tokyo@example.com", timezone="Asia/Tokyo")
    new_york = ContactFactory(email="ny@example.com", timezone="America/New_York")
    for contact in (tokyo, new_york):
        ListMembershipFactory(contact_list=members, contact=contact)
    journey = journey_with(
        {
            "kind": Kind.SCHEDULE,
            "contact_list": members,
            "starts_at": T0,
            "every": 1,
            "every_unit": "days",
            "at_local_time": time(9, 0),
        },
        reentry=Journey.Reentry.ALWAYS,
    )

    # 09:30 in Tokyo on the 10th is 19:30 on the 9th in New York.
    triggers_tick(now=datetime(2027, 1, 10, 0, 30, tzinfo=UTC))
    assert entered(journey) == ["tokyo@example.com"]
    # 09:30 in New York on the 10th (23:30 in Tokyo).
    triggers_tick(now=datetime(2027, 1, 10, 14, 30, tzinfo=UTC))
    triggers_tick(now=datetime(2027, 1, 10, 14, 31, tzinfo=UTC))
    assert entered(journey) == ["ny@example.com", "tokyo@example.com"]
    # The next day, Tokyo's nine o'clock again.
    triggers_tick(now=datetime(2027, 1, 11, 0, 30, tzinfo=UTC))
    assert entered(journey) == ["ny@example.com", "tokyo@example.com", "tokyo@example.com"]


def test_a_weekly_schedule_for_a_segment_skips_the_days_between():
    SegmentFactory(name="Pros", conditions=PRO)
    ContactFactory(email="ada@example.com", attributes={"plan": "pro"})
    ContactFactory(email="bob@example.com", attributes={"plan": "free"})
    journey = journey_with(
        {
            "kind": Kind.SCHEDULE,
            "segment": SegmentFactory(name="Pros again", conditions=PRO),
            "starts_at": T0,
            "every": 1,
            "every_unit": "weeks",
        },
        reentry=Journey.Reentry.ALWAYS,
    )

    for day in range(0, 15):
        triggers_tick(now=T0 + timedelta(days=day, minutes=5))

    assert entered(journey) == ["ada@example.com"] * 3  # the 10th, the 17th, the 24th


def test_a_schedule_needs_one_list_or_one_segment_to_go_live():
    journey = journey_with({"kind": Kind.SCHEDULE, "starts_at": T0}, state=Journey.State.DRAFT)

    with pytest.raises(JourneyStateError, match="one list or one segment"):
        journey_set_state(journey=journey, state=Journey.State.LIVE)


def test_two_schedulers_firing_one_trigger_enter_each_contact_once():
    members = ContactListFactory(name="Members")
    ListMembershipFactory(contact_list=members, contact=ContactFactory())
    journey = journey_with(
        {"kind": Kind.SCHEDULE, "contact_list": members, "starts_at": T0},
        reentry=Journey.Reentry.ALWAYS,
    )
    trigger = journey.triggers.get()

    trigger_fire(trigger_id=trigger.pk, now=T0 + timedelta(seconds=5))
    trigger_fire(trigger_id=trigger.pk, now=T0 + timedelta(seconds=5))

    assert journey.enrollments.count() == 1


# --- dates in attributes -----------------------------------------------------------------


def test_a_birthday_trigger_enters_the_day_before_at_nine_in_the_contacts_zone():
    journey = journey_with(
        {
            "kind": Kind.DATE_ATTRIBUTE,
            "date_attribute": "birthday",
            "offset_days": -1,
            "at_local_time": time(9, 0),
        },
        reentry=Journey.Reentry.AFTER_EXIT,
    )
    ContactFactory(
        email="tokyo@example.com", timezone="Asia/Tokyo", attributes={"birthday": "1990-01-12"}
    )
    ContactFactory(
        email="ny@example.com", timezone="America/New_York", attributes={"birthday": "1985-01-12"}
    )
    ContactFactory(email="later@example.com", attributes={"birthday": "1990-03-03"})
    ContactFactory(email="none@example.com")

    # 09:30 on the 11th in Tokyo; still the 10th in New York.
    triggers_tick(now=datetime(2027, 1, 11, 0, 30, tzinfo=UTC))
    assert entered(journey) == ["tokyo@example.com"]
    triggers_tick(now=datetime(2027, 1, 11, 14, 30, tzinfo=UTC))
    assert entered(journey) == ["ny@example.com", "tokyo@example.com"]
    assert journey.enrollments.first().trigger_data == {"dateAttribute": "birthday"}


def test_a_once_date_trigger_matches_the_whole_date():
    journey = journey_with(
        {"kind": Kind.DATE_ATTRIBUTE, "date_attribute": "plan.renews_on", "yearly": False}
    )
    ContactFactory(email="due@example.com", attributes={"plan": {"renews_on": "2027-01-12"}})
    ContactFactory(email="next@example.com", attributes={"plan": {"renews_on": "2028-01-12"}})

    triggers_tick(now=datetime(2027, 1, 12, 0, 5, tzinfo=UTC))

    assert entered(journey) == ["due@example.com"]


def test_a_birthday_on_the_29th_of_february_is_kept_on_the_28th_in_common_years():
    journey = journey_with({"kind": Kind.DATE_ATTRIBUTE, "date_attribute": "birthday"})
    ContactFactory(email="leap@example.com", attributes={"birthday": "2000-02-29"})

    triggers_tick(now=datetime(2027, 2, 28, 0, 5, tzinfo=UTC))

    assert entered(journey) == ["leap@example.com"]


# --- subscription changes -------------------------------------------------------------------


def test_unsubscribing_from_a_message_type_starts_the_journey_on_it():
    news = MessageTypeFactory(name="News")
    journey = journey_with(
        {"kind": Kind.SUBSCRIPTION, "message_type": news, "subscription_change": "unsubscribed"}
    )
    ada, bob = ContactFactory(email="ada@example.com"), ContactFactory(email="bob@example.com")

    subscription_set(contact=ada, status="unsubscribed", source="api", message_type=news)
    subscription_set(contact=bob, status="subscribed", source="api", message_type=news)
    subscription_set(contact=ada, status="unsubscribed", source="api", message_type=news)

    assert entered(journey) == ["ada@example.com"]
    assert journey.enrollments.get().trigger_data == {
        "subscription": "unsubscribed",
        "messageTypeId": news.pk,
    }


def test_a_batch_of_channel_unsubscribes_starts_the_journey_for_each():
    email = ChannelFactory(medium=Channel.Medium.EMAIL, kind=Channel.Kind.MARKETING)
    journey = journey_with(
        {"kind": Kind.SUBSCRIPTION, "channel": email, "subscription_change": "unsubscribed"}
    )
    contacts = [ContactFactory() for _ in range(3)]

    marketing_email_unsubscribe(contact_ids=[c.pk for c in contacts], source="api")

    assert ConsentRecord.objects.count() == 3
    assert journey.enrollments.count() == 3


# --- entries of many contacts cost a few statements ---------------------------------------


def _queries_to_fire(size, trigger_fields, make_contact):
    journey = journey_with(trigger_fields(), reentry=Journey.Reentry.ALWAYS)
    for n in range(size):
        make_contact(n)
    trigger = journey.triggers.get()
    journey.triggers.update(fired_until=T0)  # fired up to T0 already
    with CaptureQueriesContext(connection) as captured:
        trigger_fire(trigger_id=trigger.pk, now=T0 + timedelta(hours=1))
    return journey.enrollments.count(), len(captured)


def test_a_scheduled_list_costs_the_same_queries_for_twice_the_members():
    def run(size):
        Contact.objects.all().delete()
        members = ContactListFactory()

        def member(n):
            ListMembershipFactory(
                # Two zones (grouped apart), both at 00:30 at the same time in January.
                contact_list=members,
                contact=ContactFactory(timezone=["Europe/London", ""][n % 2]),
            )

        fields = {
            "kind": Kind.SCHEDULE,
            "contact_list": members,
            "starts_at": T0 - timedelta(days=1),
            "every": 1,
            "at_local_time": time(0, 30),
        }
        return _queries_to_fire(size, lambda: fields, member)

    (n_entered, n_queries), (twice_entered, twice_queries) = run(10), run(20)
    assert (n_entered, twice_entered) == (10, 20)
    assert n_queries == twice_queries


def test_segment_entry_costs_the_same_queries_for_twice_the_newcomers():
    def run(size):
        Contact.objects.all().delete()
        segment = SegmentFactory(conditions={"attribute": "cohort", "op": "eq", "value": size})
        journey = journey_with(
            {"kind": Kind.SEGMENT_ENTRY, "segment": segment}, reentry=Journey.Reentry.ALWAYS
        )
        trigger = journey.triggers.get()
        trigger_fire(trigger_id=trigger.pk, now=T0)  # the snapshot: nobody yet
        ContactFactory.create_batch(size, attributes={"cohort": size})
        with CaptureQueriesContext(connection) as captured:
            trigger_fire(trigger_id=trigger.pk, now=T0 + timedelta(hours=1))
        return journey.enrollments.count(), len(captured)

    (n_entered, n_queries), (twice_entered, twice_queries) = run(10), run(20)
    assert (n_entered, twice_entered) == (10, 20)
    assert n_queries == twice_queries


def test_a_scheduled_segment_costs_the_same_queries_for_twice_the_contacts():
    def run(size):
        Contact.objects.all().delete()
        segment = SegmentFactory(conditions={"attribute": "cohort", "op": "eq", "value": size})
        fields = {
            "kind": Kind.SCHEDULE,
            "segment": segment,
            "starts_at": T0 + timedelta(minutes=30),
        }
        return _queries_to_fire(
            size, lambda: fields, lambda n: ContactFactory(attributes={"cohort": size})
        )

    (n_entered, n_queries), (twice_entered, twice_queries) = run(10), run(20)
    assert (n_entered, twice_entered) == (10, 20)
    assert n_queries == twice_queries


def test_runs_missed_while_a_journey_was_paused_do_not_fire_when_it_goes_live_again():
    members = ContactListFactory(name="Members")
    ListMembershipFactory(contact_list=members, contact=ContactFactory(email="ada@example.com"))
    now = timezone.now()
    journey = journey_with(
        {
            "kind": Kind.SCHEDULE,
            "contact_list": members,
            "starts_at": now - timedelta(days=3, hours=1),
            "every": 1,
        },
        state=Journey.State.PAUSED,
        reentry=Journey.Reentry.ALWAYS,
    )
    journey.triggers.update(created_at=now - timedelta(days=4))  # made days ago

    journey_set_state(journey=journey, state=Journey.State.LIVE)
    triggers_tick(now=timezone.now() + timedelta(minutes=1))
    assert entered(journey) == []  # the run an hour ago was missed while paused
    triggers_tick(now=now + timedelta(hours=23, minutes=1))

    assert entered(journey) == ["ada@example.com"]
