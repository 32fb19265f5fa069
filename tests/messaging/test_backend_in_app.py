"""In-app messages: stored for the app to fetch, once per message."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from messaging.backends.inapp import InAppBackend
from messaging.models import InAppMessage
from messaging.rendering import RenderError
from tests.factories import ContactFactory, medium_message, medium_template

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_app():
    template = medium_template(
        "in_app",
        title="Welcome, {{ contact.first_name }}",
        text_body="Tap to finish <setting up> your profile.",
        link_url="https://app.acme.test/profile",
    )
    return medium_message(template, ContactFactory(user_id="u-1"), to_address="u-1")


def render(message):
    return InAppBackend().render(message.template, {"contact": {"first_name": "Ada"}})


def test_the_address_is_how_the_app_knows_the_contact():
    backend = InAppBackend()

    assert backend.address_for(ContactFactory(user_id="u-9", email="a@x.test")) == "u-9"
    assert backend.address_for(ContactFactory(email="b@x.test")) == "b@x.test"


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"text_body": "Hi", "link_url": "acme://profile"}, {}),
        ({"text_body": ""}, {"text_body": "An in-app message needs a text body."}),
        (
            {"text_body": "Hi", "link_url": "javascript:alert(document.cookie)"},
            {"link_url": "A javascript: link is not allowed."},
        ),
    ],
)
def test_check_template(fields, errors):
    assert InAppBackend().check_template(medium_template("in_app", **fields)) == errors


def test_delivering_stores_the_message_in_the_contacts_inbox(in_app):
    provider_id = InAppBackend().deliver(in_app, render(in_app))

    entry = InAppMessage.objects.get()
    assert provider_id == f"in-app-{entry.pk}"
    assert (entry.contact, entry.message, entry.title, entry.body, entry.url) == (
        in_app.contact,
        in_app,
        "Welcome, Ada",
        "Tap to finish <setting up> your profile.",  # as written: the app escapes what it shows
        "https://app.acme.test/profile",
    )
    assert entry.read_at is None and entry.expires_at is None


def test_delivering_again_does_not_store_a_second_copy(in_app):
    backend = InAppBackend()

    first = backend.deliver(in_app, render(in_app))
    second = backend.deliver(in_app, render(in_app))

    assert first == second
    assert InAppMessage.objects.count() == 1


def test_messages_expire_after_the_configured_days(in_app, settings):
    settings.WAYMARK_IN_APP_EXPIRY_DAYS = 14
    now = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

    with time_machine.travel(now, tick=False):
        InAppBackend().deliver(in_app, render(in_app))

    assert InAppMessage.objects.get().expires_at == now + timedelta(days=14)


def test_a_title_that_renders_too_long_fails_to_render():
    template = medium_template("in_app", title="{{ event.title }}", text_body="Hi")

    with pytest.raises(RenderError, match="at most 200"):
        InAppBackend().render(template, {"event": {"title": "x" * 201}})


def test_staff_see_the_inbox_entry_from_the_contact_escaped(admin_client, in_app):
    in_app.template.text_body = "<script>alert(1)</script>"
    InAppBackend().deliver(in_app, render(in_app))
    entry = InAppMessage.objects.get()

    contact_page = admin_client.get(
        reverse("admin:contacts_contact_change", args=[in_app.contact_id])
    ).content.decode()
    entry_page = admin_client.get(
        reverse("admin:messaging_inappmessage_change", args=[entry.pk])
    ).content.decode()

    inbox = reverse("admin:messaging_inappmessage_changelist")
    assert f"{inbox}?contact__id__exact={in_app.contact_id}" in contact_page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in entry_page
    assert "<script>alert(1)" not in entry_page
