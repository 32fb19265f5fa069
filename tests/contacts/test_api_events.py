"""/api/events/trackBulk and /api/events/{email}: Iterable's contract and what is written."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact, Event
from contacts.services import events_dispatch_all
from journeys.models import Enrollment
from tests.databases import PARALLEL_WRITERS
from tests.factories import ContactFactory, EventFactory, JourneyFactory, SendMessageStepFactory

BULK = "/api/events/trackBulk"


def _no_failures(count):
    return {
        "successCount": count,
        "failCount": 0,
        "invalidEmails": [],
        "invalidUserIds": [],
        "disallowedEventNames": [],
        "failedUpdates": {
            "invalidEmails": [],
            "invalidUserIds": [],
            "notFoundEmails": [],
            "notFoundUserIds": [],
            "forgottenEmails": [],
            "forgottenUserIds": [],
        },
        "failures": [],
    }


def test_track_bulk_stores_every_event_and_creates_unknown_contacts(api_client, db):
    # Given one known contact
    known = ContactFactory(email="nia@example.com")

    # When events arrive for it, for a new email and for a new userId
    response = api_client.post(
        BULK,
        {
            "events": [
                {
                    "email": "NIA@example.com",
                    "eventName": "purchase",
                    "id": "order-17",
                    "createdAt": 1700000000,
                    "dataFields": {"total": 42.5},
                    "campaignId": 12,
                    "templateId": 34,
                },
                {"email": "new@example.com", "userId": "u-new", "eventName": "signed_up"},
                {"userId": "app-7", "eventName": "opened_app"},
            ]
        },
        format="json",
    )

    # Then all three are stored, each with its contact
    assert response.status_code == 200
    assert response.json() == _no_failures(3)
    purchase = Event.objects.get(client_event_id="order-17")
    assert purchase.contact == known
    assert (purchase.name, purchase.data) == ("purchase", {"total": 42.5})
    assert purchase.occurred_at == datetime.fromtimestamp(1700000000, tz=UTC)
    assert (purchase.campaign_id, purchase.template_id) == (12, 34)
    assert Event.objects.get(name="signed_up").contact.user_id == "u-new"
    assert Event.objects.get(name="opened_app").contact.email is None
    assert Contact.objects.count() == 3
    assert all(event.client_event_id for event in Event.objects.all())


def test_a_known_event_id_of_the_same_contact_is_updated_not_duplicated(api_client, db):
    # Given an event stored earlier with the client's id
    contact = ContactFactory(email="nia@example.com")
    EventFactory(contact=contact, client_event_id="order-17", name="purchase", data={"v": 1})

    # When it is delivered again, twice in one batch
    response = api_client.post(
        BULK,
        {
            "events": [
                {
                    "email": "nia@example.com",
                    "eventName": "purchase",
                    "id": "order-17",
                    "dataFields": {"v": 2},
                },
                {
                    "email": "nia@example.com",
                    "eventName": "purchase",
                    "id": "order-17",
                    "dataFields": {"v": 3},
                },
            ]
        },
        format="json",
    )

    # Then it is one event, holding the last data
    assert response.status_code == 200
    assert response.json()["successCount"] == 2
    assert Event.objects.count() == 1
    assert Event.objects.get().data == {"v": 3}


def test_an_event_id_of_another_contact_fails_that_event_alone(api_client, db):
    # Given an event id that belongs to another contact
    other = ContactFactory(email="other@example.com")
    EventFactory(contact=other, client_event_id="order-17", name="purchase", data={"v": 1})

    # When a batch reuses it for someone else, next to a good event
    response = api_client.post(
        BULK,
        {
            "events": [
                {"email": "nia@example.com", "eventName": "ok"},
                {
                    "email": "nia@example.com",
                    "eventName": "purchase",
                    "id": "order-17",
                    "dataFields": {"v": 2},
                },
            ]
        },
        format="json",
    )

    # Then that one is reported by its position and nothing of it is written
    assert response.status_code == 200
    body = response.json()
    assert (body["successCount"], body["failCount"]) == (1, 1)
    assert body["failures"] == [
        {
            "index": 1,
            "email": "nia@example.com",
            "userId": None,
            "reason": "conflict",
            "msg": "The event id 'order-17' belongs to another user's event.",
        }
    ]
    stored = Event.objects.get(client_event_id="order-17")
    assert (stored.contact, stored.data) == (other, {"v": 1})
    assert list(Event.objects.exclude(pk=stored.pk).values_list("name", flat=True)) == ["ok"]


def test_a_new_event_id_claimed_twice_in_a_batch_fails_for_the_second_contact(api_client, db):
    # When two contacts send the same new id in one batch
    response = api_client.post(
        BULK,
        {
            "events": [
                {"email": "a@example.com", "eventName": "e", "id": "x1"},
                {"email": "b@example.com", "eventName": "e", "id": "x1"},
            ]
        },
        format="json",
    )

    # Then the first one has it
    body = response.json()
    assert (body["successCount"], body["failCount"]) == (1, 1)
    assert body["failures"][0]["index"] == 1
    assert Event.objects.get().contact.email == "a@example.com"


def test_malformed_emails_are_reported_and_the_rest_stored(api_client, db):
    # When one event names a malformed email
    response = api_client.post(
        BULK,
        {
            "events": [
                {"email": "not-an-email", "eventName": "e"},
                {"email": "nia@example.com", "eventName": "e"},
            ]
        },
        format="json",
    )

    # Then it is listed as Iterable lists it, and the other is stored
    assert response.status_code == 200
    body = response.json()
    assert (body["successCount"], body["failCount"]) == (1, 1)
    assert body["invalidEmails"] == ["not-an-email"]
    assert body["failedUpdates"]["invalidEmails"] == ["not-an-email"]
    assert body["failures"][0]["index"] == 0
    assert body["failures"][0]["reason"] == "invalidEmail"
    assert list(Contact.objects.values_list("email", flat=True)) == ["nia@example.com"]
    assert Event.objects.count() == 1


def test_a_blank_user_id_is_reported_as_invalid(api_client, db):
    response = api_client.post(
        BULK,
        {"events": [{"userId": "   ", "eventName": "e"}, {"userId": "u1", "eventName": "e"}]},
        format="json",
    )

    body = response.json()
    assert (body["successCount"], body["failCount"]) == (1, 1)
    assert body["invalidUserIds"] == ["   "]
    assert body["failedUpdates"]["invalidUserIds"] == ["   "]
    assert body["failures"][0]["reason"] == "invalidUserId"
    assert list(Contact.objects.values_list("user_id", flat=True)) == ["u1"]


def test_a_user_id_held_by_another_email_fails_that_event(api_client, db):
    # Given a contact that holds the userId
    ContactFactory(email="owner@example.com", user_id="u1")

    # When a new email claims it
    response = api_client.post(
        BULK,
        {"events": [{"email": "thief@example.com", "userId": "u1", "eventName": "e"}]},
        format="json",
    )

    # Then that event fails and no contact is created
    body = response.json()
    assert (body["successCount"], body["failCount"]) == (0, 1)
    assert body["failures"][0]["reason"] == "conflict"
    assert not Contact.objects.filter(email="thief@example.com").exists()
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"events": "nope"},
        {"events": [{"email": "a@example.com"}]},
        {"events": [{"eventName": "no identity"}]},
        {"events": [{"email": "a@example.com", "eventName": "ok"}, {"eventName": 5, "userId": []}]},
        {"events": [{"userId": "u", "eventName": "e", "createdAt": "yesterday"}]},
    ],
)
def test_a_malformed_body_is_refused_whole_and_writes_nothing(api_client, db, body):
    response = api_client.post(BULK, body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert not Contact.objects.exists()
    assert not Event.objects.exists()


def test_a_malformed_event_is_named_by_its_position(api_client, db):
    response = api_client.post(
        BULK,
        {"events": [{"email": "a@example.com", "eventName": "ok"}, {"email": "b@example.com"}]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["msg"] == "events[1].eventName: This field is required."


def test_too_many_events_are_refused_before_anything_is_written(api_client, db, settings):
    settings.WAYMARK_API = {**settings.WAYMARK_API, "MAX_BATCH": 2}
    events = [{"email": f"c{n}@example.com", "eventName": "e"} for n in range(3)]

    response = api_client.post(BULK, {"events": events}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "BatchTooLarge"
    assert response.json()["params"] == {"limit": 2, "received": 3}
    assert not Event.objects.exists()


def test_a_client_side_key_may_not_bulk_track(db):
    from rest_framework.test import APIClient

    from contacts.models import ApiKey
    from contacts.services import api_key_create

    _, raw = api_key_create(name="app", scope=ApiKey.Scope.CLIENT)
    client = APIClient()
    client.credentials(HTTP_API_KEY=raw)

    response = client.post(BULK, {"events": [{"userId": "u", "eventName": "e"}]}, format="json")

    assert response.status_code == 403
    assert not Event.objects.exists()


def test_bulk_tracked_events_start_matching_journeys_after_commit(api_client, db):
    # Given a live journey started by signed_up
    journey = JourneyFactory(trigger_event_name="signed_up")
    SendMessageStepFactory(journey=journey, position=1)

    # When a batch brings two sign-ups and the worker dispatches them
    api_client.post(
        BULK,
        {
            "events": [
                {"email": "a@example.com", "eventName": "signed_up"},
                {"email": "b@example.com", "eventName": "signed_up"},
            ]
        },
        format="json",
    )
    assert Event.objects.filter(dispatched=False).count() == 2
    assert not Enrollment.objects.exists()
    events_dispatch_all()

    # Then each contact is enrolled once
    assert Enrollment.objects.filter(journey=journey).count() == 2


def test_bulk_tracking_costs_the_same_queries_for_n_or_2n_events(api_client, db):
    # Given, for each size, half the events for known contacts and re-delivered ids
    def queries_for(n):
        known = [ContactFactory(email=f"known{i}-{n}@example.com") for i in range(n)]
        for i, contact in enumerate(known):
            EventFactory(contact=contact, client_event_id=f"id{i}-{n}")
        events = [
            {"email": contact.email, "eventName": "again", "id": f"id{i}-{n}"}
            for i, contact in enumerate(known)
        ]
        events += [{"email": f"new{i}-{n}@example.com", "eventName": "e"} for i in range(n)]
        events += [{"userId": f"u{i}-{n}", "eventName": "e", "id": f"new{i}-{n}"} for i in range(n)]
        with CaptureQueriesContext(connection) as queries:
            response = api_client.post(BULK, {"events": events}, format="json")
        assert response.json()["successCount"] == 3 * n
        return len(queries)

    # Then (after a first request has cached the key)
    api_client.post(BULK, {"events": []}, format="json")
    assert queries_for(10) == queries_for(20)
    assert Event.objects.filter(name="again").count() == 30
    assert Event.objects.count() == 90


def test_bulk_tracking_writes_nothing_for_an_empty_batch(api_client, db):
    response = api_client.post(BULK, {"events": []}, format="json")

    assert response.status_code == 200
    assert response.json() == _no_failures(0)
    assert not Event.objects.exists()


def test_user_events_by_email_are_listed_newest_first_in_iterables_shape(api_client, db):
    # Given a contact with two events, and another contact's event
    contact = ContactFactory(email="nia@example.com", user_id="u-nia")
    EventFactory(
        contact=contact,
        name="older",
        client_event_id="e1",
        occurred_at=datetime(2024, 1, 1, 9, 30, tzinfo=UTC),
    )
    EventFactory(
        contact=contact,
        name="purchase",
        client_event_id="e2",
        occurred_at=datetime(2024, 1, 2, 10, 0, 5, tzinfo=UTC),
        data={"total": 5},
        campaign_id=12,
        template_id=34,
    )
    EventFactory(name="someone else's")

    # When they are read by email, in any case, the "@" encoded as clients do
    response = api_client.get("/api/events/NIA%40example.com")

    # Then
    assert response.status_code == 200
    assert response.json() == {
        "events": [
            {
                "_id": "e2",
                "eventName": "purchase",
                "eventType": "customEvent",
                "createdAt": "2024-01-02 10:00:05 +00:00",
                "email": "nia@example.com",
                "userId": "u-nia",
                "dataFields": {"total": 5},
                "campaignId": 12,
                "templateId": 34,
            },
            {
                "_id": "e1",
                "eventName": "older",
                "eventType": "customEvent",
                "createdAt": "2024-01-01 09:30:00 +00:00",
                "email": "nia@example.com",
                "userId": "u-nia",
                "dataFields": {},
            },
        ]
    }


def test_user_events_by_user_id_honour_the_limit(api_client, db):
    # Given a contact known by userId only, with three events
    contact = ContactFactory(email=None, user_id="app/7")
    for day in (1, 2, 3):
        EventFactory(
            contact=contact, name=f"day{day}", occurred_at=datetime(2024, 1, day, tzinfo=UTC)
        )

    # When two are asked for (its userId holds a "/")
    response = api_client.get("/api/events/byUserId/app%2F7?limit=2")

    # Then the two newest come back
    assert response.status_code == 200
    assert [e["eventName"] for e in response.json()["events"]] == ["day3", "day2"]
    assert "email" not in response.json()["events"][0]
    assert response.json()["events"][0]["userId"] == "app/7"


def test_user_events_answer_thirty_by_default(api_client, db, django_assert_max_num_queries):
    contact = ContactFactory(email="nia@example.com")
    EventFactory.create_batch(35, contact=contact)
    api_client.get("/api/events/nia@example.com")  # the key is cached from now on

    with django_assert_max_num_queries(4):
        response = api_client.get("/api/events/nia@example.com")

    assert len(response.json()["events"]) == 30


def test_an_unknown_user_has_no_events(api_client, db):
    by_email = api_client.get("/api/events/nobody@example.com")
    by_user_id = api_client.get("/api/events/byUserId/nobody")

    assert (by_email.status_code, by_email.json()) == (200, {"events": []})
    assert (by_user_id.status_code, by_user_id.json()) == (200, {"events": []})


@pytest.mark.parametrize("limit", ["0", "201", "many"])
def test_a_limit_out_of_range_is_refused(api_client, db, limit):
    response = api_client.get(f"/api/events/nia@example.com?limit={limit}")

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"


def test_the_email_path_does_not_shadow_other_event_paths(api_client, db):
    # A path without "@" is not an email: events/track stays what it is.
    assert api_client.get("/api/events/track").status_code == 405
    assert api_client.get("/api/events/somebody").json()["code"] == "NotFound"


@pytest.mark.postgresql(reason=PARALLEL_WRITERS)
def test_an_event_id_stored_meanwhile_by_another_request_is_updated_not_duplicated(api_client, db):
    # Given a contact, and another request that stores the same event id right
    # after this one looked for it (simulated at the moment of the look-up)
    contact = ContactFactory(email="nia@example.com")
    stored_meanwhile = []

    def another_request(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "FOR UPDATE" in sql and "client_event_id" in sql and not stored_meanwhile:
            stored_meanwhile.append(
                EventFactory(contact=contact, client_event_id="order-17", data={"v": 1})
            )
        return result

    # When the batch brings that id
    with connection.execute_wrapper(another_request):
        response = api_client.post(
            BULK,
            {
                "events": [
                    {
                        "email": "nia@example.com",
                        "eventName": "purchase",
                        "id": "order-17",
                        "dataFields": {"v": 2},
                    },
                    {"email": "nia@example.com", "eventName": "other"},
                ]
            },
            format="json",
        )

    # Then the insert is taken again: the stored event is updated, nothing is lost
    assert response.status_code == 200
    assert response.json()["successCount"] == 2
    assert stored_meanwhile
    assert Event.objects.get(client_event_id="order-17").data == {"v": 2}
    assert Event.objects.filter(name="other").count() == 1
    assert Event.objects.count() == 2
