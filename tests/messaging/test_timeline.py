"""Messages and their engagement on a contact's timeline (messaging.timeline)."""

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import Message
from tests.admin_pages import contact_timeline
from tests.factories import (
    ContactFactory,
    EngagementFactory,
    MessageFactory,
    TemplateFactory,
    kept_as_sent,
    medium_message,
    medium_template,
)

pytestmark = pytest.mark.django_db


def srcdocs(body):
    return [html.unescape(value) for value in re.findall(r'<iframe[^>]*srcdoc="([^"]*)"', body)]


def test_a_sent_email_shows_its_content_in_a_sandboxed_frame(admin_client):
    contact = ContactFactory(attributes={"firstName": "Ada"})
    template = TemplateFactory(
        subject="Welcome, {{ contact.first_name }}!",
        html_body="<h1>Hi {{ firstName }}</h1><p>Your {{ event.plan }} plan is ready.</p>",
    )
    kept_as_sent(
        MessageFactory(
            contact=contact,
            template=template,
            status=Message.Status.SENT,
            sent_at=timezone.now(),
            subject="Welcome, Ada!",
            context={"event": {"plan": "pro"}},
        )
    )

    body = contact_timeline(admin_client, contact)

    assert '<strong class="message-subject">Welcome, Ada!</strong>' in body
    frame = re.search(r"<iframe[^>]*>", body).group(0)
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame
    assert "allow-scripts" not in frame and "allow-same-origin" not in frame
    (content,) = srcdocs(body)
    assert "<h1>Hi Ada</h1>" in content
    assert "Your pro plan is ready." in content


def test_markup_in_a_contact_s_data_stays_text(admin_client):
    contact = ContactFactory(attributes={"firstName": '"><script>alert(1)</script>'})
    template = TemplateFactory(subject="Hi", html_body="<p>Hi {{ firstName }}</p>")
    kept_as_sent(
        MessageFactory(
            contact=contact,
            template=template,
            status=Message.Status.SENT,
            sent_at=timezone.now(),
            subject='Hi "><script>alert(1)</script>',
        )
    )

    body = contact_timeline(admin_client, contact)

    assert "<script>alert(1)</script>" not in body
    (content,) = srcdocs(body)
    assert "<script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


def test_a_template_changed_since_the_send_shows_what_was_sent(admin_client):
    # Given a message kept as sent, whose template was edited afterwards
    contact = ContactFactory()
    template = TemplateFactory(html_body="<p>The words that went out</p>")
    kept_as_sent(
        MessageFactory(
            contact=contact,
            template=template,
            status=Message.Status.SENT,
            sent_at=timezone.now() - timedelta(days=2),
        )
    )
    template.html_body = "<p>New words</p>"
    template.save()

    body = contact_timeline(admin_client, contact)

    (content,) = srcdocs(body)
    assert "The words that went out" in content
    assert "New words" not in body


def test_a_sent_sms_shows_its_text_escaped(admin_client):
    contact = ContactFactory(phone="+14155550123")
    template = medium_template("sms", text_body="Code <b>{{ event.code }}</b>")
    kept_as_sent(
        medium_message(
            template,
            contact=contact,
            status=Message.Status.SENT,
            sent_at=timezone.now(),
            context={"event": {"code": "1234"}},
        )
    )

    body = contact_timeline(admin_client, contact)

    assert '<pre class="timeline-text">Code &lt;b&gt;1234&lt;/b&gt;</pre>' in body


def test_skipped_and_failed_messages_say_why_and_show_no_content(admin_client):
    contact = ContactFactory()
    MessageFactory(
        contact=contact,
        status=Message.Status.SKIPPED,
        skip_reason=Message.SkipReason.SUPPRESSED,
    )
    MessageFactory(contact=contact, status=Message.Status.FAILED, error="550 mailbox unavailable")

    body = contact_timeline(admin_client, contact)

    assert "Skipped: Address suppressed (bounce or complaint)" in body
    assert "Error: 550 mailbox unavailable" in body
    assert "<iframe" not in body


def test_test_sends_stay_off_the_timeline(admin_client):
    contact = ContactFactory()
    MessageFactory(contact=contact, is_test=True, subject="[Test] Hello")

    body = contact_timeline(admin_client, contact)

    assert "[Test] Hello" not in body
    assert "Nothing has happened to this contact yet." in body


def test_opens_clicks_and_bounces_are_entries_of_their_own(admin_client):
    contact = ContactFactory()
    message = MessageFactory(contact=contact, status=Message.Status.SENT, sent_at=timezone.now())
    EngagementFactory(message=message, kind="opened")
    EngagementFactory(message=message, kind="clicked", url="https://waymark.test/a?b=1&c=2")
    EngagementFactory(message=message, kind="bounced", hard_bounce=True)

    body = contact_timeline(admin_client, contact)

    assert body.count('class="timeline-entry timeline-engagement"') == 3
    assert "Link: https://waymark.test/a?b=1&amp;c=2" in body
    assert "Hard bounce: the address is suppressed" in body
    assert f"Opened</span> {message.template.name}" in body
