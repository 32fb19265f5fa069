"""The List-Unsubscribe mailto: address, received through anymail's inbound webhook."""

import hashlib
import hmac
import time
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from messaging.services import message_send
from subscriptions.models import ConsentRecord, Subscription
from tests.factories import ContactFactory, TemplateFactory

pytestmark = pytest.mark.django_db(transaction=True)

SIGNING_KEY = "key-test-signing"
URL = "/webhooks/anymail/mailgun/inbound_mime/"


@pytest.fixture(autouse=True)
def mailgun_signing_key(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}


def mailgun_inbound(client, *, to, subject):
    mail = EmailMessage()
    mail["From"] = "ada@example.com"
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content("")
    timestamp, token = str(int(time.time())), "inbound-token"
    signature = hmac.new(SIGNING_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return client.post(
        URL,
        {
            "body-mime": mail.as_string(),
            "timestamp": timestamp,
            "token": token,
            "signature": signature.hexdigest(),
        },
    )


def test_mailing_the_list_unsubscribe_address_unsubscribes(client, smtp_server):
    # Given an email whose List-Unsubscribe offers a mailto: address
    ada = ContactFactory(email="ada@example.com")
    template = TemplateFactory()
    message_send(contact=ada, template=template, idempotency_key="k", origin="api")
    header = smtp_server.messages[0]["List-Unsubscribe"]
    mailto = next(p.strip(" <>") for p in header.split(",") if "mailto:" in p)
    parts = urlsplit(mailto)
    subject = unquote(parse_qs(parts.query)["subject"][0])

    # When the mail client sends that email, and it reaches the inbound webhook
    response = mailgun_inbound(client, to=parts.path, subject=subject)

    # Then the contact is unsubscribed from the message type, with a consent record
    assert response.status_code == 200
    subscription = Subscription.objects.get(contact=ada)
    assert (subscription.message_type_id, subscription.status) == (
        template.message_type_id,
        "unsubscribed",
    )
    assert ConsentRecord.objects.get().source == "one_click"


@pytest.mark.parametrize(
    "subject", ["Re: your newsletter", "unsubscribe WzEsMV0:forged", "unsubscribe"]
)
def test_other_mail_to_the_address_changes_nothing(client, subject):
    ContactFactory(email="ada@example.com")

    response = mailgun_inbound(client, to="unsubscribe@localhost", subject=subject)

    assert response.status_code == 200
    assert not Subscription.objects.exists()
