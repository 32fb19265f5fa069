"""message_send: render → check → deliver → record, against a real SMTP server."""

import contextlib
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from messaging.backends import reset_backends
from messaging.backends.email import EmailBackend
from messaging.models import Message, Suppression, Template
from messaging.services import (
    SendingInTransaction,
    SendRequest,
    message_send,
    messages_claim_due,
    messages_retry,
    messages_send,
    retry_tick,
)
from subscriptions.models import Channel, MessageType
from subscriptions.services import subscription_set
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    MessageTypeFactory,
    TemplateFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


def send(contact, template, key="k1", **context):
    return message_send(
        contact=contact, template=template, idempotency_key=key, context=context, origin="api"
    )


@pytest.fixture
def ada(db):
    return ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})


def test_the_email_carries_subject_html_text_and_headers(ada, smtp_server, settings):
    settings.DEFAULT_FROM_EMAIL = "Acme <hello@acme.test>"
    template = TemplateFactory(
        subject="Hello {{ firstName }}",
        preheader="A quick note",
        html_body=(
            "<p>Order <b>{{ event.order_id }}</b> for {{ contact.first_name }}. "
            '<a href="https://acme.test/orders">See it</a></p>'
        ),
        reply_to="support@acme.test",
    )

    result = send(ada, template, event={"order_id": "A-17"})

    assert result.message.status == Message.Status.SENT
    (email,) = smtp_server.messages
    assert email["Subject"] == "Hello Ada"
    assert email["From"] == "Acme <hello@acme.test>"
    assert email["Reply-To"] == "support@acme.test"
    assert email["Message-ID"] == result.message.provider_message_id
    html = email.get_body(("html",)).get_content()
    assert "Order <b>A-17</b> for Ada" in html
    assert "A quick note" in html
    text = email.get_body(("plain",)).get_content()
    assert "Order A-17 for Ada. See it (https://acme.test/orders)" in text
    message = Message.objects.get()
    assert (message.subject, message.to_address, message.attempts) == (
        "Hello Ada",
        "ada@example.com",
        1,
    )
    assert message.sent_at is not None


def test_contact_data_is_escaped_in_html(smtp_server):
    contact = ContactFactory(attributes={"firstName": "<script>alert(1)</script>"})
    send(contact, TemplateFactory())

    html = smtp_server.messages[0].get_body(("html",)).get_content()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_templates_cannot_reach_settings_or_the_environment(ada, smtp_server, settings):
    template = TemplateFactory(
        subject="Hi",
        html_body="<p>[{{ settings.SECRET_KEY }}][{{ request.META }}][{{ environ }}]</p>",
    )
    send(ada, template)

    html = smtp_server.messages[0].get_body(("html",)).get_content()
    assert "<p>[][][]</p>" in html
    assert settings.SECRET_KEY not in html


def test_templates_cannot_reach_python_internals(ada, smtp_server):
    template = TemplateFactory(subject="Hi", html_body="<p>{{ contact.__class__ }}</p>")

    result = send(ada, template)

    assert result.message.status == Message.Status.FAILED
    assert "underscore" in result.message.error
    assert smtp_server.messages == []


@pytest.mark.parametrize("tag", ["{% debug %}", "{% load static %}", "{% include 'x.html' %}"])
def test_templates_cannot_use_tags_that_reach_outside(ada, smtp_server, tag):
    template = TemplateFactory(subject="Hi", html_body=f"<p>{tag}</p>")

    result = send(ada, template)

    assert result.message.status == Message.Status.FAILED
    assert "Template error" in result.message.error or "Invalid block tag" in result.message.error
    assert smtp_server.messages == []


def test_a_template_that_fails_to_render_is_recorded_as_failed(ada, smtp_server):
    template = TemplateFactory(subject="Hi {% if %}")

    result = send(ada, template)

    assert result.retry_at is None
    assert result.message.status == Message.Status.FAILED
    assert result.message.error
    assert smtp_server.messages == []


def test_the_same_key_sends_once(ada, smtp_server):
    template = TemplateFactory()
    first = send(ada, template, key="same")
    second = send(ada, template, key="same")

    assert first.message.pk == second.message.pk
    assert len(smtp_server.messages) == 1
    assert Message.objects.count() == 1


def test_a_contact_without_an_email_address_is_skipped(smtp_server):
    contact = ContactFactory(email=None, user_id="u-1")

    result = send(contact, TemplateFactory())

    assert (result.message.status, result.message.skip_reason) == ("skipped", "no_address")


def test_a_blocklisted_contact_is_skipped(smtp_server):
    contact = ContactFactory(blocklisted=True)

    result = send(contact, TemplateFactory())

    assert result.message.skip_reason == "blocklisted"
    assert smtp_server.messages == []


def test_a_suppressed_address_is_skipped(ada, smtp_server):
    Suppression.objects.create(address="ADA@example.com", reason="hard_bounce")

    result = send(ada, TemplateFactory())

    assert result.message.skip_reason == "suppressed"


def test_unsubscribing_from_a_message_type_blocks_it(ada, smtp_server):
    template = TemplateFactory()
    subscription_set(
        contact=ada, message_type=template.message_type, status="unsubscribed", source="api"
    )

    result = send(ada, template)

    assert result.message.skip_reason == "message_type_unsubscribed"


def test_double_opt_in_needs_a_confirmed_subscription(ada, smtp_server):
    message_type = MessageTypeFactory(policy=MessageType.Policy.DOUBLE_OPT_IN)
    template = TemplateFactory(message_type=message_type)
    change = subscription_set(
        contact=ada, message_type=message_type, status="subscribed", source="api"
    )
    assert change.subscription.status == "pending"

    pending = send(ada, template, key="before")
    subscription_set(
        contact=ada,
        message_type=message_type,
        status="subscribed",
        source="confirmation_link",
        confirmed=True,
    )
    confirmed = send(ada, template, key="after")

    assert pending.message.skip_reason == "not_confirmed"
    assert confirmed.message.status == "sent"


def test_transactional_messages_ignore_marketing_unsubscribes(ada, smtp_server):
    marketing = ChannelFactory(name="Email", kind=Channel.Kind.MARKETING)
    receipts = TemplateFactory(
        message_type=MessageTypeFactory(
            channel=ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
        )
    )
    subscription_set(contact=ada, channel=marketing, status="unsubscribed", source="api")

    result = send(ada, receipts)

    assert result.message.status == "sent"


def test_frequency_cap_skips_past_the_limit(ada, smtp_server):
    message_type = MessageTypeFactory(frequency_limit=2, frequency_period="day")
    template = TemplateFactory(message_type=message_type)

    results = [send(ada, template, key=f"k{i}") for i in range(3)]

    assert [r.message.status for r in results] == ["sent", "sent", "skipped"]
    assert results[2].message.skip_reason == "frequency_cap"
    assert len(smtp_server.messages) == 2


def retry_due(at):
    """One pass of messaging's retry pass at time `at`, run here instead of by a worker."""
    with time_machine.travel(at):
        claim = messages_claim_due(enqueue=False)
        if claim is None:
            return {}
        return messages_retry(message_ids=claim.message_ids, token=claim.token)


def test_a_server_that_is_down_is_retried_with_back_off_then_failed(ada, smtp_down, settings):
    settings.WAYMARK_SENDING = {**settings.WAYMARK_SENDING, "MAX_ATTEMPTS": 3}
    template = TemplateFactory()

    first = send(ada, template)
    message = Message.objects.get()
    first_delay = message.next_attempt_at - timezone.now()
    assert retry_due(message.next_attempt_at - timedelta(seconds=1)) == {}  # not due yet
    assert retry_due(message.next_attempt_at) == {"queued": 1}
    message.refresh_from_db()
    second_delay = message.next_attempt_at - timezone.now()
    assert retry_due(message.next_attempt_at) == {"failed": 1}

    assert first.retry_at is not None
    assert second_delay > first_delay * 3
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 3)
    assert "Connection" in message.error or "refused" in message.error.lower()


def test_a_send_asked_for_again_while_a_retry_is_pending_does_not_send(ada, smtp_server):
    smtp_server.refuse_with = "451 4.3.0 Try again later"
    template = TemplateFactory()
    first = send(ada, template)
    smtp_server.refuse_with = None

    again = send(ada, template)

    assert again.retry_at == first.retry_at
    assert smtp_server.messages == []


def test_a_temporary_refusal_is_retried_by_a_worker_and_then_delivered_once(
    ada, smtp_server, run_worker
):
    template = TemplateFactory()
    smtp_server.refuse_with = "451 4.3.0 Try again later"

    first = send(ada, template)
    smtp_server.refuse_with = None
    with time_machine.travel(first.retry_at):
        assert retry_tick() == 1
        run_worker()

    message = Message.objects.get()
    assert "451" in first.message.error
    assert (message.status, message.attempts, message.error) == ("sent", 2, "")
    assert len(smtp_server.messages) == 1


def test_a_retry_checks_consent_again(ada, smtp_server):
    template = TemplateFactory()
    smtp_server.refuse_with = "451 4.3.0 Try again later"
    first = send(ada, template)
    smtp_server.refuse_with = None
    subscription_set(
        contact=ada, channel=template.message_type.channel, status="unsubscribed", source="api"
    )

    assert retry_due(first.retry_at) == {"skipped": 1}

    message = Message.objects.get()
    assert message.skip_reason == "channel_unsubscribed"
    assert smtp_server.messages == []


def test_a_permanent_refusal_is_not_retried(ada, smtp_server):
    smtp_server.refuse_with = "550 5.1.1 No such user"

    result = send(ada, TemplateFactory())

    assert result.retry_at is None
    assert result.message.status == "failed"
    assert "550" in result.message.error


def test_the_preheader_shows_in_the_inbox_preview_not_in_the_text_part(ada, smtp_server):
    send(ada, TemplateFactory(preheader="Your first week", html_body="<p>Hello</p>"))

    email = smtp_server.messages[0]
    assert "Your first week" in email.get_body(("html",)).get_content()
    assert email.get_body(("plain",)).get_content().strip() == "Hello"


def test_rendered_text_is_not_marked_safe_for_pages():
    from django.utils.safestring import SafeData

    from messaging.rendering import render_string

    rendered = render_string("Hi {{ name }}", {"name": "<b>x</b>"}, html=False)

    assert rendered == "Hi <b>x</b>"
    assert not isinstance(rendered, SafeData)


def test_a_from_name_with_a_line_break_fails_the_message_instead_of_leaving_it_sending(
    ada, smtp_server
):
    # Given a template whose from-name got a line break past the form's checks
    template = TemplateFactory()
    Template.objects.filter(pk=template.pk).update(from_name="Acme\nBcc: everyone@example.com")
    template.refresh_from_db()

    result = send(ada, template)

    assert result.message.status == Message.Status.FAILED
    assert "line break" in result.message.error
    assert Message.objects.get().status == "failed"
    assert smtp_server.messages == []


class ExplodingBackend(EmailBackend):
    """An email backend whose delivery fails in a way nobody planned for."""

    def deliver(self, message, rendered):
        raise RuntimeError("the provider's library fell over")

    @contextlib.contextmanager
    def session(self):
        yield self


def test_an_unexpected_error_in_a_backend_fails_the_message_with_the_reason(ada, settings):
    settings.WAYMARK_BACKENDS = {
        **settings.WAYMARK_BACKENDS,
        "email": "tests.messaging.test_send.ExplodingBackend",
    }
    reset_backends()
    try:
        result = send(ada, TemplateFactory())
    finally:
        reset_backends()

    message = Message.objects.get()
    assert result.message.status == message.status == Message.Status.FAILED
    assert "RuntimeError: the provider's library fell over" in message.error
    assert message.failed_at is not None


def test_sending_inside_a_transaction_is_refused(ada, smtp_server):
    from django.db import transaction

    template = TemplateFactory()
    with pytest.raises(SendingInTransaction), transaction.atomic():
        send(ada, template)

    assert smtp_server.messages == []
    assert not Message.objects.exists()


def test_a_batch_of_emails_goes_over_one_smtp_connection(smtp_server):
    contacts = ContactFactory.create_batch(3)
    template = TemplateFactory()

    results = messages_send(
        [
            SendRequest(contact=c, template=template, idempotency_key=f"k{c.pk}", origin="api")
            for c in contacts
        ]
    )

    assert [r.message.status for r in results] == ["sent"] * 3
    assert len({m.peer for m in smtp_server.messages}) == 1


def test_quiet_hours_hold_a_marketing_message_until_morning_in_the_contacts_time_zone(
    smtp_server, settings
):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    settings.WAYMARK_SENDING = {**settings.WAYMARK_SENDING, "QUIET_HOURS": _window("21:00-08:00")}
    tokyo = ZoneInfo("Asia/Tokyo")
    contact = ContactFactory(timezone="Asia/Tokyo")
    late_evening = datetime(2026, 3, 2, 23, 30, tzinfo=tokyo)

    with time_machine.travel(late_evening, tick=False):
        held = send(contact, TemplateFactory())

    assert held.message.status == "queued"
    assert held.retry_at == datetime(2026, 3, 3, 8, 0, tzinfo=tokyo)
    assert smtp_server.messages == []
    # Then in the morning messaging's retry pass sends it
    assert retry_due(held.retry_at) == {"sent": 1}
    assert len(smtp_server.messages) == 1


def test_quiet_hours_do_not_hold_transactional_messages_or_daytime_ones(smtp_server, settings):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    settings.WAYMARK_SENDING = {**settings.WAYMARK_SENDING, "QUIET_HOURS": _window("21:00-08:00")}
    receipts = TemplateFactory(
        message_type=MessageTypeFactory(
            channel=ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
        )
    )
    in_paris = ContactFactory(timezone="Europe/Paris")
    night = datetime(2026, 3, 2, 23, 30, tzinfo=ZoneInfo("Europe/Paris"))
    noon = datetime(2026, 3, 2, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))

    with time_machine.travel(night, tick=False):
        receipt = send(in_paris, receipts, key="receipt")
    with time_machine.travel(noon, tick=False):
        news = send(in_paris, TemplateFactory(), key="news")

    assert (receipt.message.status, news.message.status) == ("sent", "sent")


def _window(value):
    from config.settings import _time_window

    return _time_window(value)
