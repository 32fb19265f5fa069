"""POST /api/subscriptions/subscribeToDoubleOptIn: a known user's double-opt-in
subscriptions await confirmation, the link goes out by email; Iterable's plain-text answers."""

import pytest

from contacts.models import Contact
from subscriptions.models import ConsentRecord, MessageType, Subscription
from tests.factories import ContactFactory, MessageTypeFactory, SubscriptionFactory

URL = "/api/subscriptions/subscribeToDoubleOptIn"
PENDING = Subscription.Status.PENDING


@pytest.fixture
def digest(db):
    return MessageTypeFactory(name="Weekly digest", policy=MessageType.Policy.DOUBLE_OPT_IN)


@pytest.mark.django_db(transaction=True)
def test_the_subscription_awaits_confirmation_and_the_email_is_sent(
    api_client, digest, smtp_server, rq_queue, run_worker
):
    ada = ContactFactory(email="ada@example.com")

    response = api_client.post(
        URL,
        {"email": "ada@example.com", "messageTypeIds": [digest.pk], "phoneNumber": "+14155550123"},
        format="json",
    )
    run_worker()

    assert response.status_code == 202
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "Request for double opt-in subscription accepted"
    assert Subscription.objects.get(contact=ada, message_type=digest).status == PENDING
    record = ConsentRecord.objects.get()
    assert (record.action, record.source, record.note) == (
        "confirmation_requested",
        "api",
        "API key test integration",
    )
    ada.refresh_from_db()
    assert ada.phone == "+14155550123"
    (confirmation,) = smtp_server.messages
    assert confirmation["To"] == "ada@example.com"
    assert "Weekly digest" in confirmation["Subject"]


@pytest.mark.django_db
def test_a_confirmed_subscription_is_left_as_it_is(api_client, digest):
    ada = ContactFactory(user_id="ada-1", email=None)
    SubscriptionFactory(contact=ada, message_type=digest, status=Subscription.Status.SUBSCRIBED)

    response = api_client.post(
        URL, {"userId": "ada-1", "messageTypeIds": [digest.pk]}, format="json"
    )

    assert response.status_code == 202
    assert Subscription.objects.get().status == Subscription.Status.SUBSCRIBED
    assert not ConsentRecord.objects.exists()


@pytest.mark.django_db
def test_an_unknown_user_is_a_plain_text_400_that_creates_nobody(api_client, digest):
    response = api_client.post(
        URL, {"email": "nobody@example.com", "messageTypeIds": [digest.pk]}, format="json"
    )

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == ("User not found for email: nobody@example.com")
    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_a_type_that_is_not_double_opt_in_is_refused_and_nothing_is_written(api_client, digest):
    ada = ContactFactory(email="ada@example.com")
    tips = MessageTypeFactory(name="Tips", policy=MessageType.Policy.OPT_IN)

    response = api_client.post(
        URL, {"email": "ada@example.com", "messageTypeIds": [digest.pk, tips.pk]}, format="json"
    )
    unknown = api_client.post(
        URL, {"email": "ada@example.com", "messageTypeIds": [999999]}, format="json"
    )

    assert response.status_code == 400
    assert response.content.decode() == f"Message type {tips.pk} is not a double opt-in type."
    assert unknown.content.decode() == "Unknown message type ids: 999999"
    assert not Subscription.objects.filter(contact=ada).exists()


@pytest.mark.django_db
def test_invalid_parameters_are_a_plain_text_400(api_client, digest):
    ContactFactory(email="ada@example.com")

    response = api_client.post(
        URL, {"email": "ada@example.com", "messageTypeIds": []}, format="json"
    )

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode().startswith("messageTypeIds:")
    assert not Subscription.objects.exists()


@pytest.mark.django_db
def test_a_body_that_is_no_json_gets_iterables_json_error_object(api_client):
    response = api_client.post(URL, b'{"email": ', content_type="application/json")

    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "message", "code", "data"}
    assert (body["error"], body["code"]) == ({"status": 400}, "BadJsonBody")


@pytest.mark.django_db
def test_a_wrong_key_still_gets_the_envelope():
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_API_KEY="wm_wrong")

    response = client.post(URL, {"email": "a@example.com", "messageTypeIds": [1]}, format="json")

    assert (response.status_code, response.json()["code"]) == (401, "BadApiKey")
