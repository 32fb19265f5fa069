"""Web push: browsers' subscriptions, VAPID-signed and encrypted messages to a
local fake push service (which decrypts them with the browser's keys), the
error mapping, the outbox, and the key pair command."""

import base64
import json
import os
from io import StringIO

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from py_vapid import Vapid
from werkzeug import Response

from messaging.backends import AddressRejected, PermanentDeliveryError, TransientDeliveryError
from messaging.backends.webpush import WebPushBackend, WebPushOutboxBackend
from tests.factories import ContactFactory, DeviceTokenFactory, medium_message, medium_template

pytestmark = pytest.mark.django_db


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def vapid_keys():
    out = StringIO()
    call_command("generate_vapid_keys", "--subject", "mailto:ops@acme.test", stdout=out)
    return dict(line.split("=", 1) for line in out.getvalue().split())


@pytest.fixture
def push_service(httpserver, settings, vapid_keys):
    settings.VAPID_PUBLIC_KEY = vapid_keys["VAPID_PUBLIC_KEY"]
    settings.VAPID_PRIVATE_KEY = vapid_keys["VAPID_PRIVATE_KEY"]
    settings.VAPID_SUBJECT = vapid_keys["VAPID_SUBJECT"]
    settings.WAYMARK_WEB_PUSH_TTL = 3600
    settings.WAYMARK_PROVIDER_TIMEOUT = 2
    # The push service is a local server: allowed here, refused in its own test.
    settings.WAYMARK_WEBHOOK_ALLOW_PRIVATE = True
    return httpserver


class Browser:
    """A browser's push subscription, with the private half a real browser keeps."""

    def __init__(self, endpoint):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.subscription = {
            "endpoint": endpoint,
            "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)},
        }

    def read(self, request) -> dict:
        clear = http_ece.decrypt(
            request.get_data(), private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        return json.loads(clear)


def subscribe(contact, endpoint):
    browser = Browser(endpoint)
    token = DeviceTokenFactory(
        contact=contact, platform="web", token=endpoint, subscription=browser.subscription
    )
    return browser, token


@pytest.fixture
def web_push():
    template = medium_template(
        "web_push",
        title="Hi {{ contact.first_name }}",
        text_body="Your report is ready.",
        link_url="/reports/{{ event.report }}",
    )
    return medium_message(template, ContactFactory(), to_address="1 device")


def render(message):
    return WebPushBackend().render(
        message.template, {"contact": {"first_name": "Ada"}, "event": {"report": "7"}}
    )


def test_the_address_counts_the_contacts_browsers_only():
    contact = ContactFactory()
    DeviceTokenFactory(contact=contact, platform="android")
    assert WebPushBackend().address_for(contact) == ""

    DeviceTokenFactory(contact=contact, platform="web")

    assert WebPushBackend().address_for(contact) == "1 device"


@pytest.mark.parametrize(
    ("link", "errors"),
    [
        ("https://acme.test/r", {}),
        ("/reports/1", {}),
        (
            "acme://reports/1",
            {"link_url": "The link must be an http(s) URL or a path starting with /."},
        ),
    ],
)
def test_a_browser_opens_http_links_and_paths_only(link, errors):
    template = medium_template("web_push", text_body="Hi", link_url=link)

    assert WebPushBackend().check_template(template) == errors


def test_the_browser_receives_the_encrypted_notification_signed_with_our_key(
    push_service, web_push, vapid_keys
):
    browser, _ = subscribe(web_push.contact, push_service.url_for("/push/abc"))
    push_service.expect_oneshot_request("/push/abc", method="POST").respond_with_response(
        Response(status=201, headers={"Location": push_service.url_for("/message/1")})
    )

    provider_id = WebPushBackend().deliver(web_push, render(web_push))

    assert provider_id == push_service.url_for("/message/1")
    request = push_service.log[0][0]
    assert browser.read(request) == {
        "title": "Hi Ada",
        "body": "Your report is ready.",
        "url": "/reports/7",
        "message_id": web_push.pk,
    }
    assert request.headers["TTL"] == "3600"
    authorization = request.headers["Authorization"]
    assert Vapid.verify(authorization)  # signed by the key it names...
    assert f"k={vapid_keys['VAPID_PUBLIC_KEY']}" in authorization  # ...which is ours
    claims = json.loads(b64url_decode(authorization.split("t=")[1].split(".")[1].split(",")[0]))
    assert claims["sub"] == "mailto:ops@acme.test"
    assert claims["aud"] == push_service.url_for("/").rstrip("/")


@pytest.mark.parametrize("status", [404, 410])
def test_a_subscription_the_push_service_no_longer_has_is_disabled(push_service, web_push, status):
    _, gone = subscribe(web_push.contact, push_service.url_for("/push/gone"))
    _, kept = subscribe(web_push.contact, push_service.url_for("/push/kept"))
    push_service.expect_request("/push/gone").respond_with_data("Gone", status=status)
    push_service.expect_request("/push/kept").respond_with_data("", status=201)

    WebPushBackend().deliver(web_push, render(web_push))

    gone.refresh_from_db()
    kept.refresh_from_db()
    assert not gone.is_active and f"answered {status}" in gone.disabled_reason
    assert kept.is_active


def test_when_every_subscription_is_gone_the_address_is_rejected(push_service, web_push):
    subscribe(web_push.contact, push_service.url_for("/push/gone"))
    push_service.expect_request("/push/gone").respond_with_data("Gone", status=410)

    with pytest.raises(AddressRejected):
        WebPushBackend().deliver(web_push, render(web_push))

    assert WebPushBackend().address_for(web_push.contact) == ""


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, TransientDeliveryError), (502, TransientDeliveryError), (400, PermanentDeliveryError)],
)
def test_other_answers_are_transient_or_permanent_and_keep_the_subscription(
    push_service, web_push, status, error
):
    _, token = subscribe(web_push.contact, push_service.url_for("/push/abc"))
    push_service.expect_request("/push/abc").respond_with_data("No", status=status)

    with pytest.raises(error, match=f"answered {status}"):
        WebPushBackend().deliver(web_push, render(web_push))

    token.refresh_from_db()
    assert token.is_active


def test_a_push_service_that_does_not_answer_in_time_is_transient(
    push_service, web_push, settings, silent_server
):
    subscribe(web_push.contact, f"{silent_server}/push/abc")
    settings.WAYMARK_PROVIDER_TIMEOUT = 0.2

    with pytest.raises(TransientDeliveryError, match="Timeout"):
        WebPushBackend().deliver(web_push, render(web_push))


def test_an_endpoint_on_an_internal_address_is_never_called(push_service, web_push, settings):
    settings.WAYMARK_WEBHOOK_ALLOW_PRIVATE = False
    _, token = subscribe(web_push.contact, push_service.url_for("/push/abc"))
    push_service.expect_request("/push/abc").respond_with_data("", status=201)

    with pytest.raises(AddressRejected):
        WebPushBackend().deliver(web_push, render(web_push))

    assert push_service.log == []
    token.refresh_from_db()
    assert "private or reserved address" in token.disabled_reason


@pytest.mark.parametrize(
    "keys",
    [
        {"p256dh": "bm90IGEga2V5", "auth": b64url(b"0123456789abcdef")},  # not a P-256 point
        {"p256dh": None, "auth": b64url(b"0123456789abcdef")},
        {"auth": b64url(b"short")},
    ],
)
def test_a_subscription_whose_keys_cannot_encrypt_is_disabled_unsent(push_service, web_push, keys):
    endpoint = push_service.url_for("/push/abc")
    token = DeviceTokenFactory(
        contact=web_push.contact,
        platform="web",
        token=endpoint,
        subscription={"endpoint": endpoint, "keys": keys},
    )

    with pytest.raises(AddressRejected):
        WebPushBackend().deliver(web_push, render(web_push))

    assert push_service.log == []
    token.refresh_from_db()
    assert (
        "cannot be used to encrypt" in token.disabled_reason or "16 bytes" in token.disabled_reason
    )


def test_without_vapid_keys_nothing_is_sent(push_service, web_push, settings):
    subscribe(web_push.contact, push_service.url_for("/push/abc"))
    settings.VAPID_PRIVATE_KEY = ""

    with pytest.raises(PermanentDeliveryError, match="VAPID_PRIVATE_KEY"):
        WebPushBackend().deliver(web_push, render(web_push))

    assert push_service.log == []


def test_the_outbox_lists_the_browsers_it_would_go_to(outbox, web_push):
    DeviceTokenFactory(contact=web_push.contact, platform="web", token="https://push.test/1")

    WebPushOutboxBackend().deliver(web_push, render(web_push))

    (line,) = outbox("web_push")
    assert line["devices"] == ["https://push.test/1"]
    assert line["url"] == "/reports/7"


def test_the_key_pair_command_prints_keys_that_belong_together(vapid_keys):
    private = Vapid.from_string(vapid_keys["VAPID_PRIVATE_KEY"])
    public = private.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )

    assert b64url(public) == vapid_keys["VAPID_PUBLIC_KEY"]
    assert vapid_keys["VAPID_SUBJECT"] == "mailto:ops@acme.test"
