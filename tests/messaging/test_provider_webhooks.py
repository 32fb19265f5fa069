"""Provider webhooks through django-anymail: verified first, then recorded."""

import hashlib
import hmac
import json
import time

import pytest
from django.urls import reverse

from contacts.models import Event
from messaging.models import Engagement, Message, Suppression
from messaging.services import message_send
from subscriptions.models import ConsentRecord, Subscription
from tests.factories import ContactFactory, TemplateFactory

pytestmark = pytest.mark.django_db(transaction=True)

SIGNING_KEY = "key-test-signing"
URL = "/webhooks/anymail/mailgun/tracking/"


@pytest.fixture(autouse=True)
def mailgun_signing_key(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}


@pytest.fixture
def sent(smtp_server):
    contact = ContactFactory(email="ada@example.com")
    return message_send(
        contact=contact, template=TemplateFactory(), idempotency_key="k", origin="api"
    ).message


def mailgun_payload(message, event, *, key=SIGNING_KEY, token="tok-1", **event_data):
    timestamp = str(int(time.time()))
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature.hexdigest()},
        "event-data": {
            "event": event,
            "timestamp": time.time(),
            "recipient": message.to_address,
            "message": {"headers": {"message-id": message.provider_message_id.strip("<>")}},
            "user-variables": {"waymark_message_id": str(message.pk)},
            **event_data,
        },
    }


def post(client, payload):
    return client.post(URL, json.dumps(payload), content_type="application/json")


def test_the_webhook_url_is_mounted():
    assert reverse("anymail:mailgun_tracking_webhook") == URL


def test_a_delivery_reported_by_the_provider_is_recorded(client, sent):
    response = post(client, mailgun_payload(sent, "delivered"))

    assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.delivered_at is not None
    engagement = Engagement.objects.get()
    assert (engagement.kind, engagement.source) == ("delivered", "provider")
    assert Event.objects.filter(contact=sent.contact, name="emailDelivered").exists()


def test_a_webhook_with_a_bad_signature_changes_nothing(client, sent):
    response = post(client, mailgun_payload(sent, "complained", key="not-the-key"))

    assert response.status_code == 400
    assert not Engagement.objects.exists()
    assert not Suppression.objects.exists()
    assert not ConsentRecord.objects.exists()


def test_a_permanent_failure_suppresses_and_a_temporary_one_does_not(client, sent):
    post(client, mailgun_payload(sent, "failed", token="t1", severity="temporary"))
    assert not Suppression.objects.exists()

    post(client, mailgun_payload(sent, "failed", token="t2", severity="permanent"))

    assert Suppression.objects.get().address == "ada@example.com"
    bounce = Engagement.objects.get(kind="bounced")
    assert bounce.hard_bounce


def test_a_complaint_unsubscribes_from_marketing_email(client, sent):
    post(client, mailgun_payload(sent, "complained"))

    assert Subscription.objects.get(contact=sent.contact).status == "unsubscribed"
    assert Message.objects.get().complained_at is not None


def test_the_same_webhook_delivered_twice_counts_once(client, sent):
    payload = mailgun_payload(sent, "opened")
    post(client, payload)
    post(client, payload)

    assert Engagement.objects.filter(kind="opened").count() == 1


def test_an_unsubscribe_at_the_provider_unsubscribes_from_the_message_type(client, sent):
    post(client, mailgun_payload(sent, "unsubscribed"))

    subscription = Subscription.objects.get(contact=sent.contact)
    assert (subscription.message_type_id, subscription.status) == (
        sent.message_type_id,
        "unsubscribed",
    )
    assert ConsentRecord.objects.get().source == "provider"


def test_an_event_for_an_unknown_message_is_accepted_and_ignored(client, sent):
    payload = mailgun_payload(sent, "opened")
    payload["event-data"]["user-variables"] = {}
    payload["event-data"]["message"]["headers"]["message-id"] = "someone-else@example.com"

    assert post(client, payload).status_code == 200
    assert not Engagement.objects.exists()
