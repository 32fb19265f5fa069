"""Double opt-in: subscribing sends a confirmation email with a signed link."""

import re

import pytest

from messaging.models import Message, Template
from subscriptions.models import MessageType
from subscriptions.services import subscription_set
from subscriptions.tokens import ids_from_confirmation_token
from tests.factories import ContactFactory, MessageTypeFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def digest(db):
    return MessageTypeFactory(name="Weekly digest", policy=MessageType.Policy.DOUBLE_OPT_IN)


def test_subscribing_to_a_double_opt_in_type_sends_one_confirmation(
    digest, smtp_server, rq_queue, run_worker
):
    ada = ContactFactory(email="ada@example.com")

    subscription_set(contact=ada, message_type=digest, status="subscribed", source="api")
    # asking again while pending changes nothing and sends nothing more
    subscription_set(contact=ada, message_type=digest, status="subscribed", source="api")
    run_worker()

    (email,) = smtp_server.messages
    assert email["To"] == "ada@example.com"
    assert "Weekly digest" in email["Subject"]
    html = email.get_body(("html",)).get_content()
    token = re.search(r'href="[^"]*/confirm/([^/"]+)/"', html).group(1)
    assert ids_from_confirmation_token(token) == (ada.pk, digest.pk)
    message = Message.objects.get()
    assert (message.origin, message.status) == ("system", "sent")
    # The confirmation itself is transactional: no one-click unsubscribe from it
    assert email["List-Unsubscribe"] is None


def test_the_confirmation_template_can_be_edited_like_any_other(
    digest, smtp_server, rq_queue, run_worker, settings
):
    from tests.factories import TemplateFactory

    settings.WAYMARK_CONFIRMATION_TEMPLATE = "Our confirmation"
    TemplateFactory(
        name="Our confirmation",
        subject="Confirm {{ event.message_type }}, {{ contact.first_name }}",
        html_body='<a href="{{ event.confirm_url }}">Confirm</a>',
    )
    ada = ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})

    subscription_set(contact=ada, message_type=digest, status="subscribed", source="api")
    run_worker()

    assert smtp_server.messages[0]["Subject"] == "Confirm Weekly digest, Ada"
    assert Template.objects.filter(name="Double opt-in confirmation").count() == 0
