"""Device tokens: registering a device, moving it between contacts, disabling it."""

import pytest
from django.urls import reverse

from contacts.models import DeviceToken
from contacts.services import DeviceTokenError, device_token_register, device_tokens_disable
from tests.factories import ContactFactory, DeviceTokenFactory

pytestmark = pytest.mark.django_db

SUBSCRIPTION = {
    "endpoint": "https://push.example.net/v1/abc",
    "expirationTime": None,
    "keys": {"p256dh": "BPublicKey", "auth": "secret"},
}


def test_an_app_registers_its_token():
    ada = ContactFactory()

    registration = device_token_register(
        contact=ada, platform="ios", token="fcm-token-1", app_id="com.acme.app"
    )

    assert registration.created
    stored = DeviceToken.objects.get()
    assert (stored.contact, stored.platform, stored.token, stored.app_id) == (
        ada,
        "ios",
        "fcm-token-1",
        "com.acme.app",
    )
    assert stored.is_active and stored.subscription is None


def test_a_browser_registers_its_subscription_and_the_endpoint_is_the_token():
    ada = ContactFactory()

    registration = device_token_register(contact=ada, platform="web", subscription=SUBSCRIPTION)

    stored = registration.device_token
    assert stored.token == "https://push.example.net/v1/abc"
    assert stored.subscription == {
        "endpoint": "https://push.example.net/v1/abc",
        "keys": {"p256dh": "BPublicKey", "auth": "secret"},
    }


def test_registering_again_re_enables_the_token_and_moves_it_to_the_new_contact():
    ada, grace = ContactFactory(), ContactFactory()
    device_token_register(contact=ada, platform="android", token="shared-phone")
    device_tokens_disable(ids=DeviceToken.objects.values_list("pk", flat=True), reason="gone")

    registration = device_token_register(contact=grace, platform="android", token="shared-phone")

    assert not registration.created
    stored = DeviceToken.objects.get()
    assert stored.contact == grace
    assert stored.is_active and stored.disabled_reason == ""


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"platform": "blackberry", "token": "t"}, "Unknown platform"),
        ({"platform": "android", "token": "  "}, "empty"),
        ({"platform": "android", "token": "two words"}, "not a device token"),
        ({"platform": "android", "token": "x" * 3000}, "not a device token"),
        ({"platform": "android", "token": "t", "subscription": SUBSCRIPTION}, "Only a browser"),
        ({"platform": "web"}, "push subscription"),
        ({"platform": "web", "subscription": {"endpoint": "ftp://x", "keys": {}}}, "an http"),
        (
            {"platform": "web", "subscription": {"endpoint": "https://push.example/1"}},
            "p256dh and auth",
        ),
    ],
)
def test_bad_registrations_are_refused_and_store_nothing(fields, problem):
    with pytest.raises(DeviceTokenError, match=problem):
        device_token_register(contact=ContactFactory(), **fields)

    assert not DeviceToken.objects.exists()


def test_disabling_keeps_the_first_reason_and_counts_only_active_tokens():
    first, second = DeviceTokenFactory(), DeviceTokenFactory()
    device_tokens_disable(ids=[first.pk], reason="UNREGISTERED")

    count = device_tokens_disable(ids=[first.pk, second.pk], reason="staff")

    assert count == 1
    first.refresh_from_db()
    assert first.disabled_reason == "UNREGISTERED"


def test_the_contact_page_links_to_its_devices_and_staff_can_disable_one(admin_client):
    token = DeviceTokenFactory(platform="ios")
    contact_page = admin_client.get(
        reverse("admin:contacts_contact_change", args=[token.contact_id])
    )
    devices_url = reverse("admin:contacts_devicetoken_changelist")
    assert f"{devices_url}?contact__id__exact={token.contact_id}" in contact_page.content.decode()

    response = admin_client.post(
        devices_url, {"action": "disable_tokens", "_selected_action": [token.pk]}
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert not token.is_active
    assert token.disabled_reason.startswith("Disabled by ")
