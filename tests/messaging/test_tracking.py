"""Opens, clicks and view-in-browser, from the email as it arrived at a real SMTP server."""

import re
from urllib.parse import urlsplit

import pytest

from contacts.models import Event
from messaging.models import Engagement, Message, Suppression
from messaging.services import engagement_record, message_send
from messaging.tracking import click_url
from subscriptions.models import Channel, ConsentRecord, Subscription
from tests.factories import ChannelFactory, ContactFactory, MessageTypeFactory, TemplateFactory

pytestmark = pytest.mark.django_db(transaction=True)

HTML = (
    '<p>Hi {{ contact.first_name }}. <a href="https://acme.test/pricing?plan=pro&amp;x=1">'
    'See plans</a> or <a href="https://acme.test/docs">read the docs</a>.</p>'
    '<p><a href="{{ links.unsubscribe }}">Unsubscribe</a> · '
    '<a href="{{ links.preferences }}">Preferences</a></p>'
)


@pytest.fixture
def ada(db):
    return ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})


def send(contact, template, key="k1"):
    return message_send(contact=contact, template=template, idempotency_key=key, origin="api")


def html_of(email):
    return email.get_body(("html",)).get_content()


def hrefs(html):
    return re.findall(r'href="([^"]+)"', html)


def path_of(url):
    return urlsplit(url).path


def test_links_point_at_signed_click_urls_except_unsubscribe_and_preferences(
    ada, smtp_server, settings
):
    settings.SITE_URL = "https://waymark.example"
    result = send(ada, TemplateFactory(html_body=HTML))

    links = hrefs(html_of(smtp_server.messages[0]))
    assert [link.split("/t/c/")[0] for link in links[:2]] == ["https://waymark.example"] * 2
    assert links[2].startswith("https://waymark.example/unsubscribe/")
    assert links[3].startswith("https://waymark.example/preferences/")
    assert result.message.links == [
        "https://acme.test/pricing?plan=pro&x=1",
        "https://acme.test/docs",
    ]


def test_a_click_redirects_to_the_link_and_is_recorded_once_per_click(ada, smtp_server, client):
    result = send(ada, TemplateFactory(html_body=HTML))
    tracked = hrefs(html_of(smtp_server.messages[0]))[0]

    first = client.get(path_of(tracked))
    second = client.get(path_of(tracked))

    assert first.status_code == second.status_code == 302
    assert first["Location"] == "https://acme.test/pricing?plan=pro&x=1"
    clicks = Engagement.objects.filter(message=result.message, kind="clicked")
    assert clicks.count() == 2
    assert {c.url for c in clicks} == {"https://acme.test/pricing?plan=pro&x=1"}
    message = Message.objects.get()
    assert message.clicked_at == min(c.occurred_at for c in clicks)
    events = Event.objects.filter(contact=ada, name="emailClick", data__url=first["Location"])
    assert [e.data["messageId"] for e in events] == [message.pk, message.pk]


def test_a_tampered_or_foreign_click_url_redirects_nowhere(ada, smtp_server, client):
    result = send(ada, TemplateFactory(html_body=HTML))
    tracked = path_of(hrefs(html_of(smtp_server.messages[0]))[0])

    tampered = client.get(tracked.replace("/t/c/", "/t/c/x"))
    # A validly signed index that names no link of this message
    unknown_index = client.get(path_of(click_url(result.message.pk, 7)))
    truncated = client.get(tracked[:-8] + "/")

    assert tampered.status_code == unknown_index.status_code == truncated.status_code == 404
    assert not Engagement.objects.exists()


def test_an_open_returns_a_pixel_and_keeps_the_first_time(ada, smtp_server, client):
    send(ada, TemplateFactory(html_body=HTML))
    pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', html_of(smtp_server.messages[0])).group(1)

    first = client.get(path_of(pixel), HTTP_USER_AGENT="Mail/1.0")
    opened_at = Message.objects.get().opened_at
    second = client.get(path_of(pixel))

    assert first.status_code == 200 and first["Content-Type"] == "image/gif"
    assert "no-cache" in first["Cache-Control"]
    assert Engagement.objects.filter(kind="opened").count() == 2
    assert Message.objects.get().opened_at == opened_at
    assert Engagement.objects.order_by("id").first().details["user_agent"] == "Mail/1.0"
    assert second.status_code == 200
    assert Event.objects.filter(contact=ada, name="emailOpen").count() == 2


def test_tracking_is_off_where_the_message_type_says_so(ada, smtp_server):
    message_type = MessageTypeFactory(track_opens=False, track_clicks=False)
    result = send(ada, TemplateFactory(message_type=message_type, html_body=HTML))

    html = html_of(smtp_server.messages[0])
    assert "/t/o/" not in html and "/t/c/" not in html
    assert 'href="https://acme.test/docs"' in html
    assert result.message.links == [
        "https://acme.test/pricing?plan=pro&x=1",
        "https://acme.test/docs",
    ]


def test_a_marketing_email_carries_one_click_unsubscribe_headers(ada, smtp_server):
    send(ada, TemplateFactory(html_body=HTML))

    email = smtp_server.messages[0]
    https_target, mailto = [part.strip(" <>") for part in email["List-Unsubscribe"].split(",")]
    assert https_target.startswith("http") and "/unsubscribe/" in https_target
    assert mailto.startswith("mailto:unsubscribe@")
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert hrefs(html_of(email))[2] == https_target


def test_a_transactional_email_links_to_the_preference_center_only(ada, smtp_server):
    receipts = MessageTypeFactory(
        channel=ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
    )
    send(ada, TemplateFactory(message_type=receipts, html_body=HTML))

    email = smtp_server.messages[0]
    assert email["List-Unsubscribe"] is None
    assert email["List-Unsubscribe-Post"] is None
    unsubscribe_link, preferences_link = hrefs(html_of(email))[2:4]
    assert unsubscribe_link == preferences_link
    assert "/preferences/" in preferences_link


def test_view_in_browser_shows_the_message_framed_and_sandboxed(ada, smtp_server, client):
    template = TemplateFactory(
        html_body='<p>Hi {{ contact.first_name }}</p><a href="{{ links.view_in_browser }}">View</a>'
    )
    send(ada, template)
    view = hrefs(html_of(smtp_server.messages[0]))[0]

    response = client.get(path_of(view))

    assert response.status_code == 200
    assert "<iframe sandbox=" in response.content.decode()
    assert "Hi Ada" in response.content.decode()
    assert "script-src" not in response["Content-Security-Policy"]
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert client.get(path_of(view).replace("/m/", "/m/0")).status_code == 404


def test_view_in_browser_shows_what_was_sent_after_the_template_changed(ada, smtp_server, client):
    # Given an email sent to Ada, whose template was edited afterwards
    template = TemplateFactory(
        html_body='<p>Hi {{ contact.first_name }}</p><a href="{{ links.view_in_browser }}">View</a>'
    )
    send(ada, template)
    view = hrefs(html_of(smtp_server.messages[0]))[0]
    template.html_body = "<p>Our new offer</p>"
    template.save()

    # When she opens the message in her browser
    page = client.get(path_of(view)).content.decode()

    # Then she sees the email she received, not today's template
    assert "Hi Ada" in page
    assert "new offer" not in page


def test_a_message_opened_then_complained_about_keeps_both_and_stops_marketing_email(
    ada, smtp_server
):
    marketing = ChannelFactory(name="Newsletter email", kind=Channel.Kind.MARKETING)
    result = send(ada, TemplateFactory(message_type=MessageTypeFactory(channel=marketing)))
    message = result.message

    engagement_record(message=message, kind="opened", source="tracking")
    engagement_record(message=message, kind="complained", source="provider")

    message.refresh_from_db()
    assert message.opened_at is not None and message.complained_at is not None
    assert list(message.engagements.order_by("id").values_list("kind", flat=True)) == [
        "opened",
        "complained",
    ]
    assert Suppression.objects.get(address="ada@example.com").reason == "complaint"
    assert Subscription.objects.get(contact=ada, channel=marketing).status == "unsubscribed"
    record = ConsentRecord.objects.get(contact=ada, channel=marketing)
    assert (record.action, record.source) == ("unsubscribed", "complaint")
    assert Event.objects.filter(contact=ada, name="emailComplaint").exists()


def test_a_hard_bounce_suppresses_the_address_and_a_soft_one_does_not(ada, smtp_server):
    message = send(ada, TemplateFactory()).message

    engagement_record(message=message, kind="bounced", source="provider", hard_bounce=False)
    assert not Suppression.objects.exists()
    engagement_record(message=message, kind="bounced", source="provider", hard_bounce=True)

    assert Suppression.objects.get().reason == "hard_bounce"
    assert Event.objects.filter(contact=ada, name="emailBounce").count() == 2
    again = send(ada, TemplateFactory(), key="k2")
    assert again.message.skip_reason == "suppressed"


def test_a_provider_event_delivered_twice_is_recorded_once(ada, smtp_server):
    message = send(ada, TemplateFactory()).message

    first = engagement_record(
        message=message, kind="delivered", source="provider", provider_event_id="evt-1"
    )
    second = engagement_record(
        message=message, kind="delivered", source="provider", provider_event_id="evt-1"
    )

    assert (first.created, second.created) == (True, False)
    assert Engagement.objects.count() == 1
    assert Event.objects.filter(name="emailDelivered").count() == 1
