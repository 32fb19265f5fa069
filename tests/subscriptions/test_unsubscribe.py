"""One-click unsubscribe (RFC 8058): a mail client's POST, without cookies or a
CSRF token, unsubscribes; a GET only shows a page (mail scanners fetch links)."""

import re
from html import unescape
from urllib.parse import urlsplit

import pytest
from django.test import Client

from messaging.models import Message
from messaging.services import message_send
from subscriptions.models import Channel, ConsentRecord, Subscription
from subscriptions.tokens import preferences_token, unsubscribe_token, unsubscribe_url
from tests.databases import PARALLEL_WRITERS
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    MessageTypeFactory,
    SubscriptionFactory,
    TemplateFactory,
)

pytestmark = pytest.mark.django_db

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
MAIL_CLIENT = {"HTTP_USER_AGENT": "ExampleMail/2.0 (one-click)", "REMOTE_ADDR": "198.51.100.7"}


@pytest.fixture
def mail_client():
    """What a mail provider is: no cookies, no CSRF token, and CSRF enforced."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def ada():
    return ContactFactory(email="ada@example.com")


@pytest.fixture
def newsletter():
    return MessageTypeFactory(name="Newsletter", description="The monthly news.")


def path_of(url):
    return urlsplit(url).path


def unsubscribe_path(contact, message_type):
    return f"/unsubscribe/{unsubscribe_token(contact, message_type)}/"


def nothing_stored():
    return not Subscription.objects.exists() and not ConsentRecord.objects.exists()


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_a_one_click_post_unsubscribes_without_cookie_or_csrf_token(
    mail_client, ada, newsletter, encoding
):
    path = unsubscribe_path(ada, newsletter)

    if encoding == "urlencoded":
        response = mail_client.post(
            path,
            "List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
            **MAIL_CLIENT,
        )
    else:
        response = mail_client.post(path, ONE_CLICK, **MAIL_CLIENT)  # multipart/form-data

    assert response.status_code == 200  # never a redirect (RFC 8058)
    assert "You are unsubscribed" in response.content.decode()
    subscription = Subscription.objects.get()
    assert (subscription.contact, subscription.message_type, subscription.status) == (
        ada,
        newsletter,
        "unsubscribed",
    )
    record = ConsentRecord.objects.get()
    assert (record.action, record.source, record.message_type) == (
        "unsubscribed",
        "one_click",
        newsletter,
    )
    assert record.ip_address == "198.51.100.7"
    assert record.user_agent == "ExampleMail/2.0 (one-click)"


def test_a_second_one_click_post_is_harmless(mail_client, ada, newsletter):
    path = unsubscribe_path(ada, newsletter)

    first = mail_client.post(path, ONE_CLICK, **MAIL_CLIENT)
    second = mail_client.post(path, ONE_CLICK, **MAIL_CLIENT)

    assert first.status_code == second.status_code == 200
    assert Subscription.objects.get().status == "unsubscribed"
    assert ConsentRecord.objects.count() == 1


def test_get_and_head_change_nothing_and_show_a_button_that_makes_the_same_post(
    mail_client, ada, newsletter
):
    path = unsubscribe_path(ada, newsletter)

    page = mail_client.get(path, **MAIL_CLIENT)
    head = mail_client.head(path)

    assert page.status_code == head.status_code == 200
    assert nothing_stored()
    html = page.content.decode()
    assert "Newsletter" in html
    form = re.search(r"<form (.*?)>(.*?)</form>", html, re.S)
    assert 'method="post"' in form.group(1) and "action=" not in form.group(1)  # posts to itself
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]+)"', form.group(2)))
    assert fields == ONE_CLICK
    # The button's POST, from a browser with no cookie, is the one-click POST
    assert mail_client.post(path, fields).status_code == 200
    assert Subscription.objects.get().status == "unsubscribed"


def test_the_page_says_so_when_already_unsubscribed(mail_client, ada, newsletter):
    SubscriptionFactory(contact=ada, message_type=newsletter, status="unsubscribed")

    html = mail_client.get(unsubscribe_path(ada, newsletter)).content.decode()

    assert "You are unsubscribed" in html
    assert "<form" not in html


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"List-Unsubscribe": "Yes"},
        {"List-Unsubscribe": ["One-Click", "One-Click"]},
        {"unsubscribe": "1"},
    ],
)
def test_any_other_post_is_refused_and_changes_nothing(mail_client, ada, newsletter, body):
    response = mail_client.post(unsubscribe_path(ada, newsletter), body)

    assert response.status_code == 400
    assert "Nothing was changed" in response.content.decode()
    assert nothing_stored()


def test_the_scope_setting_unsubscribes_from_the_whole_channel(
    mail_client, ada, newsletter, settings
):
    settings.WAYMARK_UNSUBSCRIBE_SCOPE = "channel"
    offers = MessageTypeFactory(name="Offers", channel=newsletter.channel)
    path = unsubscribe_path(ada, newsletter)

    assert "nothing more on Marketing email" in mail_client.get(path).content.decode()
    mail_client.post(path, ONE_CLICK, **MAIL_CLIENT)
    mail_client.post(path, ONE_CLICK, **MAIL_CLIENT)

    subscription = Subscription.objects.get()
    assert (subscription.channel, subscription.message_type) == (newsletter.channel, None)
    assert subscription.status == "unsubscribed"
    record = ConsentRecord.objects.get()
    assert (record.channel, record.source) == (newsletter.channel, "one_click")
    # The other type of that channel is blocked too; by default only the
    # message type would be.
    from subscriptions.services import contact_consent_skip_reason

    assert contact_consent_skip_reason(contact=ada, message_type=offers) == "channel_unsubscribed"


def test_by_default_only_the_message_type_is_left(mail_client, ada, newsletter):
    from subscriptions.services import contact_consent_skip_reason

    offers = MessageTypeFactory(name="Offers", channel=newsletter.channel)

    mail_client.post(unsubscribe_path(ada, newsletter), ONE_CLICK)

    assert contact_consent_skip_reason(contact=ada, message_type=offers) is None
    assert (
        contact_consent_skip_reason(contact=ada, message_type=newsletter)
        == "message_type_unsubscribed"
    )


def test_a_transactional_types_link_leads_to_the_preference_center(mail_client, ada):
    receipts = MessageTypeFactory(
        name="Receipts", channel=ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
    )
    path = unsubscribe_path(ada, receipts)

    shown = mail_client.get(path)
    posted = mail_client.post(path, ONE_CLICK, **MAIL_CLIENT)

    assert shown.status_code == 302
    assert shown["Location"] == f"/preferences/{preferences_token(ada)}/"
    # A POST is never redirected; it is refused, and nothing changes.
    assert posted.status_code == 409
    assert "always sent" in posted.content.decode()
    assert nothing_stored()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],
        lambda t: t[: len(t) // 2],
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: "x" + t,
    ],
    ids=["truncated", "halved", "changed", "prefixed"],
)
def test_a_tampered_or_truncated_link_gets_404_and_changes_nothing(
    mail_client, ada, newsletter, mangle
):
    path = f"/unsubscribe/{mangle(unsubscribe_token(ada, newsletter))}/"

    shown = mail_client.get(path)
    posted = mail_client.post(path, ONE_CLICK)

    assert shown.status_code == posted.status_code == 404
    assert "This link is not valid" in posted.content.decode()
    assert nothing_stored()


def test_another_purposes_or_another_sites_token_gets_404(mail_client, ada, newsletter, settings):
    preferences = preferences_token(ada)
    settings.SECRET_KEY = "another-site-" + "z" * 40
    foreign = unsubscribe_token(ada, newsletter)
    settings.SECRET_KEY = "this-site-" + "k" * 40

    for token in (preferences, foreign):
        assert mail_client.post(f"/unsubscribe/{token}/", ONE_CLICK).status_code == 404
    assert nothing_stored()


def test_a_link_to_a_forgotten_contact_or_deleted_type_gets_404(mail_client, ada, newsletter):
    gone_type = MessageTypeFactory(name="Gone")
    type_path = unsubscribe_path(ada, gone_type)
    gone_type.delete()
    bob = ContactFactory()
    contact_path = unsubscribe_path(bob, newsletter)
    bob.delete()

    deleted_type = mail_client.post(type_path, ONE_CLICK)
    forgotten = mail_client.post(contact_path, ONE_CLICK)

    assert deleted_type.status_code == forgotten.status_code == 404
    # The contact is still known: the page offers its preference center.
    assert f"/preferences/{preferences_token(ada)}/" in deleted_type.content.decode()
    assert nothing_stored()


def test_the_page_is_neither_cached_framed_nor_scripted(mail_client, ada, newsletter):
    response = mail_client.get(unsubscribe_path(ada, newsletter))

    assert "no-store" in response["Cache-Control"]
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "script-src" not in response["Content-Security-Policy"]  # default-src 'none'
    assert response["Referrer-Policy"] == "same-origin"
    assert "noindex" in response["X-Robots-Tag"]


def test_names_staff_wrote_are_escaped(mail_client, ada):
    evil = MessageTypeFactory(name='<script>alert("x")</script>')

    html = mail_client.get(unsubscribe_path(ada, evil)).content.decode()

    assert "<script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.django_db(transaction=True)
def test_the_header_of_a_real_email_unsubscribes_and_the_next_send_is_skipped(
    mail_client, ada, newsletter, smtp_server
):
    template = TemplateFactory(
        message_type=newsletter,
        html_body='<p>News</p><a href="{{ links.unsubscribe }}">Unsubscribe</a>',
    )
    message_send(contact=ada, template=template, idempotency_key="n1", origin="api")
    (email,) = smtp_server.messages
    https_target = unescape(email["List-Unsubscribe"].split(",")[0].strip(" <>"))
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert https_target == unsubscribe_url(ada, newsletter)

    response = mail_client.post(
        path_of(https_target),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    second = message_send(contact=ada, template=template, idempotency_key="n2", origin="api")

    assert response.status_code == 200
    assert len(smtp_server.messages) == 1
    assert second.message.status == Message.Status.SKIPPED
    assert second.message.skip_reason == "message_type_unsubscribed"


@pytest.mark.postgresql(reason=PARALLEL_WRITERS)
@pytest.mark.django_db(transaction=True)
def test_two_one_click_posts_at_the_same_moment_record_once(ada, newsletter):
    """Mail providers do retry at once. The second request, arriving while the
    first has inserted the row but not committed, waits for it, then finds
    the contact already unsubscribed."""
    import threading

    from django.db import connection, transaction

    from subscriptions.services import unsubscribe_one_click

    outcome = {}

    def second_request():
        try:
            outcome["change"] = unsubscribe_one_click(contact=ada, message_type=newsletter)
        except Exception as exc:  # reported below, on the test's thread
            outcome["error"] = exc
        finally:
            connection.close()

    second = threading.Thread(target=second_request)
    with transaction.atomic():
        first = unsubscribe_one_click(contact=ada, message_type=newsletter)
        second.start()
        # Commit only once the second request waits on the row this one inserted.
        with connection.cursor() as cursor:
            for _ in range(1000):
                # pg_locks, not pg_stat_activity: that one is read once per transaction.
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if cursor.fetchone()[0]:
                    break
                cursor.execute("SELECT pg_sleep(0.01)")
            else:
                pytest.fail(f"The second request never waited for the first: {outcome}.")
    second.join()

    assert "error" not in outcome, outcome.get("error")
    assert first.changed and not outcome["change"].changed
    assert ConsentRecord.objects.count() == 1
    assert Subscription.objects.get().status == "unsubscribed"


def test_an_unknown_unsubscribe_scope_stops_waymark_at_start():
    import os
    import subprocess
    import sys

    env = {**os.environ, "DEBUG": "true", "WAYMARK_UNSUBSCRIBE_SCOPE": "everything"}
    started = subprocess.run(
        [sys.executable, "-c", "import config.settings"], env=env, capture_output=True, text=True
    )

    assert started.returncode != 0
    assert "WAYMARK_UNSUBSCRIBE_SCOPE must be message_type or channel" in started.stderr
