"""A subscriber's pages in a real browser, starting from a real email: the
preference center, unsubscribe from all, double opt-in, and the one-click
POST a mail client makes from the List-Unsubscribe header."""

import re
import urllib.request
from html import unescape

import pytest
from playwright.sync_api import expect

from messaging.models import Message
from messaging.services import message_send
from subscriptions.models import Channel, ConsentRecord, MessageType, Subscription
from tests.factories import ChannelFactory, ContactFactory, MessageTypeFactory, TemplateFactory

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT = "/tmp/preference-center-phone.png"
NEWSLETTER_HTML = (
    "<p>Hi {{ contact.first_name }}, here is the news.</p>"
    '<p><a href="https://acme.test/read">Read more</a></p>'
    '<p><a href="{{ links.unsubscribe }}">Unsubscribe</a> · '
    '<a href="{{ links.preferences }}">Manage preferences</a></p>'
)


@pytest.fixture
def site(settings, live_server):
    """Links in emails point at the live server, as SITE_URL does in production."""
    settings.SITE_URL = live_server.url
    return live_server


@pytest.fixture
def ada(db):
    return ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})


@pytest.fixture
def email_channel(db):
    return ChannelFactory(name="Email", description="Messages to your inbox.")


@pytest.fixture
def newsletter(email_channel):
    return MessageTypeFactory(
        channel=email_channel, name="Newsletter", description="What is new, once a month."
    )


@pytest.fixture
def offers(email_channel):
    return MessageTypeFactory(
        channel=email_channel, name="Offers", policy=MessageType.Policy.OPT_IN
    )


@pytest.fixture
def digest(email_channel):
    return MessageTypeFactory(
        channel=email_channel, name="Weekly digest", policy=MessageType.Policy.DOUBLE_OPT_IN
    )


@pytest.fixture
def receipts(db):
    channel = ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
    return MessageTypeFactory(channel=channel, name="Order receipts")


@pytest.fixture
def newsletter_template(newsletter):
    return TemplateFactory(name="Monthly news", message_type=newsletter, html_body=NEWSLETTER_HTML)


def send(contact, template, key):
    return message_send(contact=contact, template=template, idempotency_key=key, origin="api")


def link_in(email, text):
    """The href of the link with this text in the email's HTML part, as a mail
    client shows it."""
    html = email.get_body(("html",)).get_content()
    return unescape(re.search(rf'<a href="([^"]+)"[^>]*>{text}</a>', html).group(1))


def status_of(contact, **scope):
    return (
        Subscription.objects.filter(contact=contact, **scope)
        .values_list("status", flat=True)
        .first()
    )


def test_from_an_email_a_subscriber_changes_two_preferences_and_sees_them_after_reload(
    page, site, ada, newsletter, offers, digest, receipts, newsletter_template, smtp_server
):
    send(ada, newsletter_template, "news-1")
    (email,) = smtp_server.messages
    preferences = link_in(email, "Manage preferences")
    assert preferences.startswith(f"{site.url}/preferences/")

    page.goto(preferences)
    expect(page.get_by_role("heading", name="Choose what you receive")).to_be_visible()
    expect(page.get_by_label("Newsletter")).to_be_checked()
    expect(page.get_by_label("Offers")).not_to_be_checked()
    expect(page.get_by_text("Order receipts")).to_be_visible()  # always sent, no box
    page.get_by_label("Newsletter").uncheck()
    page.get_by_label("Offers").check()
    page.get_by_role("button", name="Save my choices").click()

    expect(page.get_by_role("status")).to_have_text("Your choices are saved.")
    page.reload()
    expect(page.get_by_label("Newsletter")).not_to_be_checked()
    expect(page.get_by_label("Offers")).to_be_checked()
    expect(page.get_by_label("Weekly digest")).not_to_be_checked()
    assert status_of(ada, message_type=newsletter) == "unsubscribed"
    assert status_of(ada, message_type=offers) == "subscribed"
    assert set(ConsentRecord.objects.values_list("source", "user_agent")) == {
        ("preference_center", page.evaluate("navigator.userAgent"))
    }
    assert ConsentRecord.objects.count() == 2

    # The next newsletter is not sent, and says why.
    assert send(ada, newsletter_template, "news-2").message.skip_reason == (
        "message_type_unsubscribed"
    )


def test_the_preference_center_fits_a_phone(browser, site, ada, newsletter, offers, digest):
    from subscriptions.tokens import preferences_url

    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    phone = context.new_page()
    try:
        phone.goto(preferences_url(ada))
        expect(phone.get_by_role("button", name="Save my choices")).to_be_visible()

        # Nothing wider than the screen: no sideways scrolling.
        assert phone.evaluate("document.documentElement.scrollWidth") <= 360
        box = phone.get_by_role("button", name="Save my choices").bounding_box()
        assert box["height"] >= 40  # a thumb-sized target
        phone.screenshot(path=SCREENSHOT, full_page=True)
    finally:
        context.close()


def test_unsubscribe_from_all_marketing(
    page, site, ada, newsletter, offers, receipts, newsletter_template, smtp_server
):
    sms = MessageTypeFactory(channel=ChannelFactory(name="Text messages", medium="sms"))
    send(ada, newsletter_template, "news-1")
    page.goto(link_in(smtp_server.messages[0], "Manage preferences"))

    page.get_by_role("button", name="Unsubscribe from all marketing").click()

    expect(page.get_by_role("status")).to_have_text(
        "You are unsubscribed from all marketing messages."
    )
    expect(page.get_by_label("Unsubscribe from everything on Email")).to_be_checked()
    expect(page.get_by_label("Unsubscribe from everything on Text messages")).to_be_checked()
    assert status_of(ada, channel=newsletter.channel) == "unsubscribed"
    assert status_of(ada, channel=sms.channel) == "unsubscribed"
    assert status_of(ada, channel=receipts.channel) is None
    assert send(ada, newsletter_template, "news-2").message.skip_reason == "channel_unsubscribed"


def test_a_double_opt_in_is_confirmed_from_the_email_it_sends(
    page, site, ada, newsletter, digest, newsletter_template, smtp_server, rq_queue, run_worker
):
    send(ada, newsletter_template, "news-1")
    page.goto(link_in(smtp_server.messages[0], "Manage preferences"))
    page.get_by_label("Weekly digest").check()
    page.get_by_role("button", name="Save my choices").click()
    expect(page.get_by_role("status")).to_contain_text("Check your inbox")
    expect(page.get_by_text("Awaiting confirmation: check your inbox")).to_be_visible()

    run_worker()  # messaging sends the confirmation email
    confirmation = smtp_server.messages[1]
    assert "Weekly digest" in confirmation["Subject"]
    page.goto(link_in(confirmation, r"\s*Yes, subscribe me\s*"))

    assert status_of(ada, message_type=digest) == "pending"  # opening the link is not enough
    page.get_by_role("button", name="Confirm").click()

    expect(page.get_by_role("heading", name="Thank you: confirmed")).to_be_visible()
    page.get_by_role("link", name="Choose what you receive").click()
    expect(page.get_by_label("Weekly digest")).to_be_checked()
    expect(page.get_by_text("Awaiting confirmation")).to_have_count(0)
    record = ConsentRecord.objects.order_by("id").last()
    assert (record.action, record.source) == ("confirmed", "confirmation_link")


def test_the_one_click_post_from_the_list_unsubscribe_header_as_a_mail_client_sends_it(
    site, ada, newsletter, newsletter_template, smtp_server
):
    send(ada, newsletter_template, "news-1")
    (email,) = smtp_server.messages
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_target = email["List-Unsubscribe"].split(",")[0].strip(" <>")
    assert https_target.startswith(f"{site.url}/unsubscribe/")

    # RFC 8058: a POST of exactly this body, no cookies, no redirects followed.
    request = urllib.request.Request(
        https_target,
        data=b"List-Unsubscribe=One-Click",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "ExampleMail/1.0",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.url == https_target  # answered there, not redirected

    record = ConsentRecord.objects.get()
    assert (record.action, record.source, record.user_agent) == (
        "unsubscribed",
        "one_click",
        "ExampleMail/1.0",
    )
    assert record.ip_address == "127.0.0.1"
    second = send(ada, newsletter_template, "news-2")
    assert second.message.status == Message.Status.SKIPPED
    assert second.message.get_skip_reason_display() == "Unsubscribed from the message type"
    assert len(smtp_server.messages) == 1


def test_the_unsubscribe_link_opened_in_a_browser_asks_first_then_unsubscribes(
    page, site, ada, newsletter, newsletter_template, smtp_server
):
    send(ada, newsletter_template, "news-1")
    unsubscribe = link_in(smtp_server.messages[0], "Unsubscribe")

    page.goto(unsubscribe)
    expect(page.get_by_role("heading", name="Unsubscribe?")).to_be_visible()
    assert not Subscription.objects.exists()  # opening the link changes nothing
    page.get_by_role("button", name="Unsubscribe").click()

    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    assert status_of(ada, message_type=newsletter) == "unsubscribed"
    assert ConsentRecord.objects.get().source == "one_click"
    assert page.context.cookies() == []  # no cookie was needed, none was set
