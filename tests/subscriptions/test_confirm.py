"""Double opt-in: the confirmation link's GET shows a button, its POST confirms,
and the consent ledger proves it."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.test import Client

from subscriptions.models import ConsentRecord, MessageType, Subscription
from subscriptions.services import contact_consent_skip_reason, subscription_set
from subscriptions.tokens import confirmation_token, preferences_token
from tests.factories import ContactFactory, MessageTypeFactory
from tests.subscriptions.pages import Tab, forms_of

pytestmark = pytest.mark.django_db

BROWSER = {"HTTP_USER_AGENT": "Mozilla/5.0 (Confirm)", "REMOTE_ADDR": "192.0.2.44"}


@pytest.fixture
def browser():
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def ada():
    return ContactFactory(email="ada@example.com")


@pytest.fixture
def digest():
    return MessageTypeFactory(name="Weekly digest", policy=MessageType.Policy.DOUBLE_OPT_IN)


def ask(contact, message_type):
    subscription_set(contact=contact, message_type=message_type, status="subscribed", source="api")


def confirm_path(contact, message_type):
    return f"/confirm/{confirmation_token(contact, message_type)}/"


def press_confirm(browser, path, **extra):
    """Load the page and press its Confirm button, as a browser does."""
    page = browser.get(path)
    (form,) = forms_of(page.content.decode()).forms
    data = {i["name"]: i["value"] for i in form["inputs"] if i["type"] == "hidden"}
    return browser.post(path, data, **extra)


def status_of(contact, message_type):
    return Subscription.objects.get(contact=contact, message_type=message_type).status


def test_get_shows_a_confirm_button_and_changes_nothing(browser, ada, digest):
    ask(ada, digest)

    page = browser.get(confirm_path(ada, digest), **BROWSER)
    browser.head(confirm_path(ada, digest))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Confirm your subscription" in html and "Weekly digest" in html
    assert re.search(r'<form method="post">.*<button[^>]*>Confirm</button>', html, re.S)
    assert status_of(ada, digest) == "pending"
    assert ConsentRecord.objects.count() == 1  # the request only


def test_pressing_confirm_subscribes_and_the_ledger_proves_it(browser, ada, digest):
    ask(ada, digest)

    response = press_confirm(browser, confirm_path(ada, digest), **BROWSER)

    assert response.status_code == 200
    assert "Thank you: confirmed" in response.content.decode()
    assert status_of(ada, digest) == "subscribed"
    assert contact_consent_skip_reason(contact=ada, message_type=digest) is None
    record = ConsentRecord.objects.order_by("id").last()
    assert (record.action, record.source) == ("confirmed", "confirmation_link")
    assert (record.ip_address, record.user_agent) == ("192.0.2.44", "Mozilla/5.0 (Confirm)")


def test_confirming_twice_records_once(browser, ada, digest):
    ask(ada, digest)
    path = confirm_path(ada, digest)

    page = browser.get(path)
    (form,) = forms_of(page.content.decode()).forms
    data = {i["name"]: i["value"] for i in form["inputs"] if i["type"] == "hidden"}

    browser.post(path, data)
    again = browser.post(path, data)  # a double click, or the form resubmitted

    assert again.status_code == 200
    assert "Already confirmed" in again.content.decode()
    assert ConsentRecord.objects.filter(action="confirmed").count() == 1
    assert "Already confirmed" in browser.get(path).content.decode()


def test_the_confirm_post_needs_the_pages_csrf_token(browser, ada, digest):
    ask(ada, digest)

    response = browser.post(confirm_path(ada, digest))

    assert response.status_code == 403
    assert status_of(ada, digest) == "pending"


def test_a_withdrawn_request_is_not_confirmed_by_its_old_link(browser, ada, digest):
    ask(ada, digest)
    path = confirm_path(ada, digest)
    page = browser.get(path)
    subscription_set(contact=ada, message_type=digest, status="unsubscribed", source="api")
    (form,) = forms_of(page.content.decode()).forms
    token = next(i["value"] for i in form["inputs"] if i["name"] == "csrfmiddlewaretoken")

    response = browser.post(path, {"csrfmiddlewaretoken": token})

    assert response.status_code == 409
    assert "Nothing to confirm" in response.content.decode()
    assert status_of(ada, digest) == "unsubscribed"
    assert not ConsentRecord.objects.filter(action="confirmed").exists()
    assert "Nothing to confirm" in browser.get(path).content.decode()


def test_a_link_for_a_type_never_asked_for_confirms_nothing(browser, ada, digest):
    response = browser.get(confirm_path(ada, digest))

    assert "Nothing to confirm" in response.content.decode()
    assert "<form" not in response.content.decode()
    assert not Subscription.objects.exists()


def test_an_expired_link_gets_404_and_offers_the_preference_center(browser, ada, digest, settings):
    settings.WAYMARK_CONFIRMATION_MAX_AGE = timedelta(days=7)
    with time_machine.travel("2025-03-01 12:00Z"):
        ask(ada, digest)
        path = confirm_path(ada, digest)
        page = browser.get(path)
    (form,) = forms_of(page.content.decode()).forms
    data = {i["name"]: i["value"] for i in form["inputs"] if i["type"] == "hidden"}

    with time_machine.travel("2025-03-09 12:00Z"):
        shown = browser.get(path)
        posted = browser.post(path, data)

    assert shown.status_code == posted.status_code == 404
    html = posted.content.decode()
    assert "This confirmation link has expired" in html
    assert f'href="/preferences/{preferences_token(ada)}/"' in html
    assert status_of(ada, digest) == "pending"
    assert not ConsentRecord.objects.filter(action="confirmed").exists()


@pytest.mark.parametrize(
    "mangle",
    [lambda t: t[:-1], lambda t: t[: len(t) // 2], lambda t: "x" + t],
    ids=["truncated", "halved", "prefixed"],
)
def test_a_tampered_link_gets_404_offers_nothing_and_changes_nothing(browser, ada, digest, mangle):
    ask(ada, digest)
    good = confirm_path(ada, digest)
    page = browser.get(good)
    (form,) = forms_of(page.content.decode()).forms
    data = {i["name"]: i["value"] for i in form["inputs"] if i["type"] == "hidden"}
    bad = f"/confirm/{mangle(confirmation_token(ada, digest))}/"

    shown = browser.get(bad)
    posted = browser.post(bad, data)

    assert shown.status_code == posted.status_code == 404
    assert "This link is not valid" in posted.content.decode()
    assert "/preferences/" not in posted.content.decode()  # the contact is unknown
    assert status_of(ada, digest) == "pending"


def test_a_link_of_another_purpose_is_refused(browser, ada, digest):
    from subscriptions.tokens import unsubscribe_token

    ask(ada, digest)

    for token in (preferences_token(ada), unsubscribe_token(ada, digest)):
        assert browser.get(f"/confirm/{token}/").status_code == 404
    assert status_of(ada, digest) == "pending"


@pytest.mark.django_db(transaction=True)
def test_from_the_preference_center_to_a_real_confirmation_email_and_back(
    browser, ada, digest, smtp_server, rq_queue, run_worker
):
    tab = Tab(browser, f"/preferences/{preferences_token(ada)}/")
    tab.tick("Weekly digest")
    tab.save()
    tab.save()  # posted twice: one request, one email
    run_worker()

    (email,) = smtp_server.messages
    assert email["To"] == "ada@example.com"
    html = email.get_body(("html",)).get_content()
    link = re.search(r'href="([^"]*/confirm/[^"]+/)"', html).group(1)
    response = press_confirm(browser, urlsplit(link).path)

    assert response.status_code == 200
    assert status_of(ada, digest) == "subscribed"
    assert [r.action for r in ConsentRecord.objects.order_by("id")] == [
        "confirmation_requested",
        "confirmed",
    ]
    assert Tab(browser, f"/preferences/{preferences_token(ada)}/").checked("Weekly digest")


def test_subscribing_again_once_confirmed_keeps_the_confirmed_subscription(ada, digest):
    ask(ada, digest)
    subscription_set(
        contact=ada, message_type=digest, status="subscribed", source="api", confirmed=True
    )
    records = ConsentRecord.objects.count()

    change = subscription_set(contact=ada, message_type=digest, status="subscribed", source="admin")

    assert change.changed is False
    assert Subscription.objects.get(contact=ada, message_type=digest).status == "subscribed"
    assert ConsentRecord.objects.count() == records
    assert contact_consent_skip_reason(contact=ada, message_type=digest) is None
