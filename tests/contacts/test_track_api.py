"""POST /api/events/track: Iterable's contract, its error envelope, and what it writes."""

import pytest
from rest_framework.test import APIClient

from contacts.models import Contact, Event
from contacts.services import api_key_create, api_key_revoke, events_dispatch_all
from journeys.models import Enrollment
from tests.factories import ContactFactory, JourneyFactory, SendMessageStepFactory

URL = "/api/events/track"


@pytest.fixture
def signup_journey(db):
    journey = JourneyFactory(trigger_event_name="signed_up")
    SendMessageStepFactory(journey=journey, position=1)
    return journey


def test_track_records_the_event_and_answers_like_iterable(api_client, db):
    response = api_client.post(
        URL,
        {
            "email": "nia@example.com",
            "eventName": "purchase",
            "id": "order-17",
            "createdAt": 1700000000,
            "dataFields": {"total": 42.5, "items": ["book"]},
            "campaignId": 12,
            "templateId": 34,
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {
        "msg": "Event with id: order-17 tracked.",
        "code": "Success",
        "params": {"id": "order-17"},
    }
    event = Event.objects.get()
    assert (event.name, event.contact.email) == ("purchase", "nia@example.com")
    assert event.data == {"total": 42.5, "items": ["book"]}
    assert event.occurred_at.timestamp() == 1700000000
    assert (event.campaign_id, event.template_id) == (12, 34)


def test_track_by_user_id_creates_the_contact(api_client, db):
    response = api_client.post(URL, {"userId": "app-7", "eventName": "opened_app"}, format="json")

    assert response.status_code == 200
    generated_id = response.json()["params"]["id"]
    assert Event.objects.get().client_event_id == generated_id
    assert Contact.objects.get().user_id == "app-7"


def test_resending_an_event_id_updates_instead_of_duplicating(api_client, db):
    body = {"email": "nia@example.com", "eventName": "purchase", "id": "order-17"}
    api_client.post(URL, {**body, "dataFields": {"total": 1}}, format="json")
    api_client.post(URL, {**body, "dataFields": {"total": 2}}, format="json")

    assert Event.objects.count() == 1
    assert Event.objects.get().data == {"total": 2}


def test_track_starts_matching_live_journeys_once(api_client, signup_journey):
    JourneyFactory(trigger_event_name="signed_up", state="draft")
    JourneyFactory(trigger_event_name="purchase")
    body = {"email": "nia@example.com", "eventName": "signed_up", "id": "e1"}

    api_client.post(URL, body, format="json")
    api_client.post(URL, body, format="json")  # a re-delivery of the same event
    events_dispatch_all()  # what a worker does moments later

    enrollment = Enrollment.objects.get()
    assert enrollment.journey == signup_journey
    assert enrollment.state == Enrollment.State.ACTIVE
    assert enrollment.next_run_at is not None


def test_event_data_reaches_the_enrollment(api_client, signup_journey):
    api_client.post(
        URL,
        {"email": "nia@example.com", "eventName": "signed_up", "dataFields": {"plan": "pro"}},
        format="json",
    )
    events_dispatch_all()

    assert Enrollment.objects.get().trigger_data == {"plan": "pro"}


def test_an_exit_event_takes_contacts_out_of_the_journey(api_client, signup_journey):
    signup_journey.exit_event_name = "cancelled"
    signup_journey.save()
    api_client.post(URL, {"email": "nia@example.com", "eventName": "signed_up"}, format="json")
    events_dispatch_all()

    api_client.post(URL, {"email": "nia@example.com", "eventName": "cancelled"}, format="json")
    events_dispatch_all()

    enrollment = Enrollment.objects.get()
    assert enrollment.state == Enrollment.State.EXITED
    assert enrollment.exit_reason == "exit event: cancelled"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"email": "nia@example.com", "eventName": ', "BadJsonBody"),
        ("[1, 2, 3]", "BadParams"),
        ('{"email": "nia@example.com"}', "BadParams"),
        ('{"eventName": "signed_up"}', "BadParams"),
        ('{"email": "not-an-email", "eventName": "signed_up"}', "InvalidEmailAddressError"),
        ('{"email": "nia@example.com", "eventName": "x", "dataFields": [1]}', "BadParams"),
        ('{"email": "nia@example.com", "eventName": "x", "createdAt": "yesterday"}', "BadParams"),
    ],
)
def test_a_malformed_body_gets_a_400_envelope_and_writes_nothing(
    api_client, signup_journey, body, code
):
    response = api_client.post(URL, body, content_type="application/json")

    assert response.status_code == 400
    payload = response.json()
    assert payload["code"] == code
    assert payload["msg"]
    assert "params" in payload
    assert Event.objects.count() == 0
    assert Contact.objects.count() == 0
    assert Enrollment.objects.count() == 0


def test_a_body_that_is_not_json_is_refused(api_client, db):
    response = api_client.post(URL, "email=nia@example.com", content_type="text/plain")

    assert response.status_code == 400
    assert response.json()["code"] == "BadJsonBody"
    assert Event.objects.count() == 0


def test_a_missing_api_key_is_refused(db):
    response = APIClient().post(URL, {"email": "a@example.com", "eventName": "x"}, format="json")

    assert response.status_code == 401
    assert response.json() == {"msg": "Invalid API key", "code": "BadApiKey", "params": None}
    assert Event.objects.count() == 0


def test_a_wrong_or_revoked_api_key_is_refused(db):
    api_key, raw_key = api_key_create(name="old")
    api_key_revoke(api_key=api_key)
    for key in (raw_key, raw_key + "x", ""):
        client = APIClient()
        client.credentials(HTTP_API_KEY=key)
        response = client.post(URL, {"email": "a@example.com", "eventName": "x"}, format="json")
        assert response.status_code == 401
        assert response.json()["code"] == "BadApiKey"
    assert Event.objects.count() == 0


def test_api_keys_are_stored_hashed(db):
    api_key, raw_key = api_key_create(name="ci")

    assert raw_key.startswith("wm_")
    assert raw_key not in {api_key.key_hash, api_key.prefix}
    assert api_key.prefix == raw_key[:10]


@pytest.mark.postgresql(
    reason="one INSERT … SELECT finds the contact and stores the event; "
    "SQLite takes the ORM's few statements"
)
def test_tracking_stores_the_event_without_consulting_journeys(
    api_client, signup_journey, django_assert_num_queries
):
    ContactFactory(email="nia@example.com")
    body = {"email": "nia@example.com", "eventName": "signed_up", "dataFields": {"a": 1}}
    # The key (and its last use), then one statement that finds the contact
    # and stores the event: journeys hear of the event after the response,
    # from a worker.
    with django_assert_num_queries(3) as queries:
        response = api_client.post(URL, body, format="json")

    assert response.status_code == 200
    assert not [q for q in queries.captured_queries if "journeys_" in q["sql"]]
    assert Event.objects.get().dispatched is False


def test_dispatching_a_batch_of_events_costs_the_same_for_ten_or_twenty(api_client, signup_journey):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_to_dispatch(events):
        for n in range(events):
            body = {"email": f"c{n}-{events}@example.com", "eventName": "signed_up"}
            api_client.post(URL, body, format="json")
        with CaptureQueriesContext(connection) as queries:
            assert events_dispatch_all() == events
        return len(queries)

    assert queries_to_dispatch(10) == queries_to_dispatch(20)
    assert Enrollment.objects.count() == 30


def test_an_event_id_of_another_contact_is_refused_and_changes_nothing(api_client, db):
    api_client.post(URL, {"email": "ada@example.com", "eventName": "purchase", "id": "o-1"},
                    format="json")  # fmt: skip

    response = api_client.post(
        URL,
        {"email": "bob@example.com", "eventName": "refund", "id": "o-1", "dataFields": {"x": 1}},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    event = Event.objects.get()
    assert (event.contact.email, event.name, event.data) == ("ada@example.com", "purchase", {})


def test_a_goal_event_marks_the_enrollment_as_converted(api_client, signup_journey):
    signup_journey.goal_event_name = "purchase"
    signup_journey.save()
    api_client.post(URL, {"email": "nia@example.com", "eventName": "signed_up"}, format="json")
    events_dispatch_all()

    api_client.post(URL, {"email": "nia@example.com", "eventName": "purchase"}, format="json")
    events_dispatch_all()

    enrollment = Enrollment.objects.get()
    assert enrollment.goal_reached_at is not None
    assert enrollment.state == Enrollment.State.ACTIVE


def test_a_new_email_with_another_contacts_user_id_is_refused_and_stores_nothing(api_client):
    ContactFactory(email="first@example.com", user_id="app-7")

    response = api_client.post(
        URL, {"email": "second@example.com", "userId": "app-7", "eventName": "x"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert not Contact.objects.filter(email="second@example.com").exists()
    assert not Event.objects.exists()


def test_an_event_by_user_id_goes_to_the_contact_with_that_user_id(api_client):
    known = ContactFactory(email="nia@example.com", user_id="app-7")

    response = api_client.post(URL, {"userId": "app-7", "eventName": "opened_app"}, format="json")

    assert response.status_code == 200
    assert Event.objects.get().contact == known
    assert Contact.objects.count() == 1


def test_a_new_contact_gets_both_identities_and_an_email_in_lower_case(api_client):
    response = api_client.post(
        URL, {"email": " Nia@Example.COM ", "userId": "app-9", "eventName": "x"}, format="json"
    )

    assert response.status_code == 200
    contact = Contact.objects.get()
    assert (contact.email, contact.user_id, contact.attributes) == ("nia@example.com", "app-9", {})
    assert Event.objects.get().contact == contact


def test_null_optional_fields_count_as_absent_as_iterable_clients_send_them(api_client):
    body = {"email": "nia@example.com", "userId": None, "eventName": "x", "dataFields": None,
            "id": None, "createdAt": None, "campaignId": None, "templateId": None}  # fmt: skip

    response = api_client.post(URL, body, format="json")

    assert response.status_code == 200
    event = Event.objects.get()
    assert (event.data, event.campaign_id, event.contact.user_id) == ({}, None, None)


def test_a_null_required_field_is_still_missing(api_client):
    response = api_client.post(URL, {"email": "nia@example.com", "eventName": None}, format="json")

    assert response.status_code == 400
    assert response.json()["params"]["errors"]["eventName"] == ["This field is required."]
    assert not Event.objects.exists()
