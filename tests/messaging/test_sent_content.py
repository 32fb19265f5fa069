"""The content a sent message carried, kept as it was sent (messaging.models.SentContent)."""

import html
import re
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from messaging.models import Message, SentContent
from messaging.services import message_send, sent_content_prune
from messaging.services.sending import _Results
from messaging.services.sent_content import sent_content_prune_when_due
from subscriptions.models import Subscription
from subscriptions.services import subscription_set
from tests.admin_pages import contact_timeline
from tests.databases import ROW_BY_ROW
from tests.factories import (
    ContactFactory,
    DeviceTokenFactory,
    MessageFactory,
    TemplateFactory,
    medium_template,
)

pytestmark = pytest.mark.django_db(transaction=True)


def send(contact, template, key="k1", **context):
    return message_send(
        contact=contact, template=template, idempotency_key=key, context=context, origin="api"
    )


def srcdocs(body):
    return [html.unescape(value) for value in re.findall(r'<iframe[^>]*srcdoc="([^"]*)"', body)]


def kept(message) -> dict:
    return SentContent.objects.get(message=message).parts


@pytest.fixture
def ada(db):
    return ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})


def test_a_sent_email_keeps_what_arrived_even_after_the_template_is_edited(
    ada, smtp_server, admin_client
):
    # Given an email sent to Ada
    template = TemplateFactory(
        subject="Hello {{ firstName }}",
        html_body='<p>Your plan: <b>{{ event.plan }}</b>. <a href="https://acme.test/p">Open</a>'
        "</p>",
        text_body="Your plan: {{ event.plan }}.",
    )
    result = send(ada, template, event={"plan": "pro"})
    (email,) = smtp_server.messages
    arrived_html = email.get_body(("html",)).get_content()
    arrived_text = email.get_body(("plain",)).get_content()

    # When the template and Ada's attributes change afterwards
    template.subject = "Goodbye {{ firstName }}"
    template.html_body = "<p>Something else entirely</p>"
    template.save()
    ada.attributes = {"firstName": "Augusta"}
    ada.save()

    # Then what is kept is what arrived, byte for byte
    parts = kept(result.message)
    assert parts["subject"] == email["Subject"] == "Hello Ada"
    assert parts["html"] == arrived_html.rstrip("\n")
    assert parts["text"] == arrived_text.rstrip("\n")
    # and the timeline shows it, not the edited template
    body = contact_timeline(admin_client, ada)
    (frame,) = srcdocs(body)
    assert "Your plan: <b>pro</b>" in frame
    assert "Something else entirely" not in frame
    assert "Content as sent" in body


def test_the_shown_content_records_no_open_and_no_click(ada, smtp_server, admin_client):
    # Given a tracked email, its stored HTML carrying the pixel and click URLs
    template = TemplateFactory(
        subject="Hi",
        html_body='<p><a href="https://acme.test/a?x=1&amp;y=2">A</a> {{ links.unsubscribe }}</p>',
    )
    template.message_type.track_opens = template.message_type.track_clicks = True
    template.message_type.save()
    result = send(ada, template)
    stored = kept(result.message)["html"]
    assert "/t/o/" in stored and "/t/c/" in stored

    # When staff look at it on the timeline
    body = contact_timeline(admin_client, ada)

    # Then the frame holds neither the pixel nor a click URL, but the real link
    (frame,) = srcdocs(body)
    assert "/t/o/" not in frame and "/t/c/" not in frame
    assert 'href="https://acme.test/a?x=1&amp;y=2"' in frame


def test_a_skipped_message_keeps_nothing(ada, smtp_server, admin_client):
    # Given Ada unsubscribed from the channel
    template = TemplateFactory()
    subscription_set(
        contact=ada,
        channel=template.message_type.channel,
        status=Subscription.Status.UNSUBSCRIBED,
        source="admin",
    )

    # When a message is sent to her
    result = send(ada, template)

    # Then it is skipped, nothing arrived and nothing is kept
    assert result.message.status == Message.Status.SKIPPED
    assert smtp_server.messages == []
    assert not SentContent.objects.exists()
    body = contact_timeline(admin_client, ada)
    assert "<iframe" not in body


def test_a_failed_delivery_keeps_nothing(ada, smtp_server):
    smtp_server.refuse_with = "550 5.1.1 No such user"

    result = send(ada, TemplateFactory())

    assert result.message.status == Message.Status.FAILED
    assert not SentContent.objects.exists()


def test_an_sms_through_the_outbox_keeps_its_body(outbox, admin_client):
    # Given a contact with a phone and an SMS template
    contact = ContactFactory(phone="+14155550123", attributes={"firstName": "Ada"})
    template = medium_template("sms", text_body="Hi {{ firstName }}, code {{ event.code }}.")

    # When it is sent through the development outbox
    result = send(contact, template, event={"code": "1234"})

    # Then the kept body is the one the outbox received
    assert result.message.status == Message.Status.SENT
    (line,) = outbox("sms")
    assert kept(result.message)["text"] == line["text"] == "Hi Ada, code 1234."
    body = contact_timeline(admin_client, contact)
    assert '<pre class="timeline-text">Hi Ada, code 1234.</pre>' in body


def test_a_push_through_the_outbox_keeps_title_body_and_link(outbox):
    contact = ContactFactory()
    DeviceTokenFactory(contact=contact)
    template = medium_template(
        "push", title="Hi {{ firstName }}", text_body="Your order shipped", link_url="app://o/1"
    )

    result = send(contact, template)

    assert result.message.status == Message.Status.SENT
    (line,) = outbox("push")
    parts = kept(result.message)
    assert (parts["title"], parts["text"], parts["url"]) == (
        line["title"],
        line["text"],
        line["url"],
    )


def test_nothing_is_kept_when_the_retention_is_zero(ada, smtp_server, settings):
    settings.WAYMARK_SENT_CONTENT_DAYS = 0

    result = send(ada, TemplateFactory())

    assert result.message.status == Message.Status.SENT
    assert not SentContent.objects.exists()


def test_pruning_deletes_only_content_past_the_retention(settings):
    # Given content kept 31, 29 and 0 days ago, with a 30-day retention
    settings.WAYMARK_SENT_CONTENT_DAYS = 30
    now = timezone.now()
    ages = {"old": 31, "recent": 29, "new": 0}
    messages = {}
    for name, days in ages.items():
        messages[name] = MessageFactory(status=Message.Status.SENT, sent_at=now - timedelta(days))
        SentContent.objects.create(
            message=messages[name],
            stored_at=now - timedelta(days=days),
            data=SentContent.pack({"text": name}),
        )

    # When the pruning pass runs
    deleted = sent_content_prune(now=now)

    # Then only the old one is gone, and its message stays
    assert deleted == 1
    left = {SentContent.unpack(row.data)["text"] for row in SentContent.objects.all()}
    assert left == {"recent", "new"}
    assert Message.objects.filter(pk=messages["old"].pk).exists()


def test_pruning_works_in_bounded_chunks(settings):
    settings.WAYMARK_SENT_CONTENT_DAYS = 1
    old = timezone.now() - timedelta(days=2)
    for message in MessageFactory.create_batch(5, status=Message.Status.SENT):
        SentContent.objects.create(message=message, stored_at=old, data=SentContent.pack({}))

    assert sent_content_prune(chunk=2, max_chunks=2) == 4
    assert SentContent.objects.count() == 1
    assert sent_content_prune(chunk=2, max_chunks=2) == 1
    assert not SentContent.objects.exists()


def test_the_scheduler_pass_prunes(settings, monkeypatch):
    from messaging.services import retry_tick, sent_content

    settings.WAYMARK_SENT_CONTENT_DAYS = 1
    monkeypatch.setattr(sent_content, "_next_prune_at", float("-inf"))
    message = MessageFactory(status=Message.Status.SENT)
    SentContent.objects.create(
        message=message, stored_at=timezone.now() - timedelta(days=3), data=SentContent.pack({})
    )

    retry_tick()

    assert not SentContent.objects.exists()
    # and not again within the interval
    SentContent.objects.create(
        message=message, stored_at=timezone.now() - timedelta(days=3), data=SentContent.pack({})
    )
    assert sent_content_prune_when_due() == 0
    assert SentContent.objects.count() == 1


def test_content_past_the_retention_is_said_to_be_gone_on_the_timeline(admin_client):
    # Given a sent message whose content is not kept (pruned)
    contact = ContactFactory(attributes={"firstName": "Ada"})
    message = MessageFactory(
        contact=contact, status=Message.Status.SENT, sent_at=timezone.now(), subject="Welcome"
    )

    body = contact_timeline(admin_client, contact)

    # Then the timeline says so and renders nothing again
    assert "The content of this message is not kept" in body
    assert "Preview with today's template</a> (not what was sent)" in body
    assert "<iframe" not in body
    assert reverse("admin:messaging_message_change", args=[message.pk]) in body


def test_the_message_page_shows_the_kept_content(ada, smtp_server, admin_client):
    result = send(ada, TemplateFactory(subject="Hi {{ firstName }}", html_body="<p>Kept</p>"))

    response = admin_client.get(reverse("admin:messaging_message_change", args=[result.message.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    assert "As it was sent" in body
    (frame,) = srcdocs(body)
    assert "<p>Kept</p>" in frame
    assert "Preview with today" not in body


def test_the_message_page_labels_a_preview_with_today_s_template(admin_client):
    # Given a sent message with no content kept, whose template says something now
    contact = ContactFactory(attributes={"firstName": "Ada"})
    template = TemplateFactory(html_body="<p>Today's words for {{ firstName }}</p>")
    message = MessageFactory(
        contact=contact, template=template, status=Message.Status.SENT, sent_at=timezone.now()
    )

    response = admin_client.get(reverse("admin:messaging_message_change", args=[message.pk]))

    # Then the page says the content is not kept, and the preview is labelled as today's
    body = response.content.decode()
    assert "The content of this message is not kept: it is kept 30 days after sending." in body
    assert "Preview with today's template (not what was sent)" in body
    (frame,) = srcdocs(body)
    assert "Today's words for Ada" in frame


def test_a_skipped_message_page_says_nothing_was_sent(admin_client):
    message = MessageFactory(
        status=Message.Status.SKIPPED, skip_reason=Message.SkipReason.SUPPRESSED
    )

    response = admin_client.get(reverse("admin:messaging_message_change", args=[message.pk]))

    body = response.content.decode()
    assert "Nothing was sent, so no content is kept." in body
    assert "<iframe" not in body


def _pending(count):
    results = _Results()
    for message in MessageFactory.create_batch(count, status=Message.Status.SENDING):
        results.add(
            message,
            content=SentContent.pack({"text": f"body {message.pk}"}),
            status=Message.Status.SENT,
            sent_at=timezone.now(),
        )
    return results


@pytest.mark.postgresql(reason=ROW_BY_ROW)
def test_writing_outcomes_with_their_content_costs_the_same_for_n_and_2n():
    # Given two chunks of sent messages, one twice as big
    small, big = _pending(10), _pending(20)

    # When each is written, counting the queries
    with transaction.atomic(), CaptureQueriesContext(connection) as small_queries:
        small.write(force=True)
    with transaction.atomic(), CaptureQueriesContext(connection) as big_queries:
        big.write(force=True)

    # Then the bigger chunk costs no more statements
    assert len(big_queries.captured_queries) == len(small_queries.captured_queries)
    # and every message is sent and has its own content
    assert Message.objects.filter(status=Message.Status.SENT).count() == 30
    assert SentContent.objects.count() == 30
    for message in Message.objects.all():
        assert kept(message)["text"] == f"body {message.pk}"
