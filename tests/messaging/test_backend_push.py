"""Push to apps: the contact's device tokens, rendering, and delivery through
FCM's HTTP v1 API — a local fake of it, OAuth2 token exchange included —
or the development outbox."""

import json
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt
from werkzeug import Response

from contacts.models import DeviceToken
from contacts.services import device_tokens_disable
from messaging.backends import AddressRejected, PermanentDeliveryError, TransientDeliveryError
from messaging.backends.push import FcmBackend, PushOutboxBackend
from messaging.rendering import RenderError
from tests.factories import ContactFactory, DeviceTokenFactory, medium_message, medium_template

pytestmark = pytest.mark.django_db

SEND_PATH = "/v1/projects/waymark-test/messages:send"


@pytest.fixture(scope="module")
def service_account_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def fcm(httpserver, settings, tmp_path, service_account_key):
    """FCM and Google's token endpoint, played by a local server; a service
    account whose key file points at it. The token endpoint checks the
    signed assertion against the account's public key."""
    pem = service_account_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    token_uri = httpserver.url_for("/token")
    key_file = tmp_path / "service-account.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "waymark-test",
                "private_key_id": "key-1",
                "private_key": pem,
                "client_email": "waymark@waymark-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    public_pem = service_account_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def token_endpoint(request):
        form = parse_qs(request.get_data(as_text=True))
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        # Signed by the account's key (google-auth addresses it to Google's token URL).
        claims = jwt.decode(
            form["assertion"][0],
            certs=public_pem,
            audience="https://oauth2.googleapis.com/token",
        )
        assert claims["iss"] == "waymark@waymark-test.iam.gserviceaccount.com"
        assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
        body = {"access_token": "ya29.test-token", "expires_in": 3600, "token_type": "Bearer"}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/token", method="POST").respond_with_handler(token_endpoint)
    settings.FCM_CREDENTIALS_FILE = str(key_file)
    settings.FCM_PROJECT_ID = ""
    settings.FCM_API_URL = httpserver.url_for("").rstrip("/")
    settings.WAYMARK_PROVIDER_TIMEOUT = 2
    return httpserver


def fcm_error(status, code, message, *, fcm_code=None, field=None):
    details = []
    if fcm_code:
        details.append(
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}
        )
    if field:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": message}],
            }
        )
    return {"error": {"code": status, "message": message, "status": code, "details": details}}


def sent_messages(server):
    return [
        json.loads(request.get_data())["message"]
        for request, _ in server.log
        if request.path == SEND_PATH
    ]


@pytest.fixture
def push():
    template = medium_template(
        "push",
        title="Hi {{ contact.first_name }}",
        text_body="Your order {{ event.order }} shipped.",
        link_url="acme://orders/{{ event.order }}",
    )
    contact = ContactFactory()
    return medium_message(template, contact, to_address="2 devices")


def render(message, **event):
    return FcmBackend().render(message.template, {"contact": {"first_name": "Ada"}, "event": event})


# --- address --------------------------------------------------------------------


def test_the_address_counts_the_contacts_active_app_devices():
    contact = ContactFactory()
    backend = FcmBackend()
    assert backend.address_for(contact) == ""

    DeviceTokenFactory(contact=contact, platform="android")
    DeviceTokenFactory(contact=contact, platform="ios")
    DeviceTokenFactory(contact=contact, platform="web")  # web push's, not ours
    gone = DeviceTokenFactory(contact=contact, platform="ios")
    device_tokens_disable(ids=[gone.pk], reason="UNREGISTERED")

    assert backend.address_for(contact) == "2 devices"


# --- templates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"text_body": "Hi"}, {}),
        ({"text_body": ""}, {"text_body": "A push notification needs a text body."}),
        ({"text_body": "Hi", "link_url": "acme://orders/1"}, {}),
        ({"text_body": "Hi", "link_url": "https://acme.test/o"}, {}),
        ({"text_body": "Hi", "link_url": "{{ event.link }}"}, {}),
        (
            {"text_body": "Hi", "link_url": "orders/1"},
            {"link_url": "The link needs a scheme: https://… or the app's own, like myapp://…."},
        ),
        (
            {"text_body": "Hi", "link_url": "javascript:alert(1)"},
            {"link_url": "A javascript: link is not allowed."},
        ),
    ],
)
def test_check_template(fields, errors):
    assert FcmBackend().check_template(medium_template("push", **fields)) == errors


def test_rendering_fills_title_text_and_link(push):
    rendered = render(push, order="A-17")

    assert (rendered.title, rendered.text, rendered.url) == (
        "Hi Ada",
        "Your order A-17 shipped.",
        "acme://orders/A-17",
    )
    assert rendered.links == ("acme://orders/A-17",)


def test_a_notification_that_renders_empty_too_big_or_with_a_script_link_fails():
    backend = FcmBackend()

    with pytest.raises(RenderError, match="empty"):
        backend.render(medium_template("push", text_body="{{ nothing }}"), {})
    with pytest.raises(RenderError, match="bytes"):
        backend.render(medium_template("push", text_body="x" * 4000), {})
    with pytest.raises(RenderError, match="javascript"):
        backend.render(
            medium_template("push", text_body="Hi", link_url="{{ event.url }}"),
            {"event": {"url": "javascript:alert(1)"}},
        )


# --- FCM ------------------------------------------------------------------------------


def test_every_active_device_gets_the_notification_with_an_access_token(fcm, push):
    android = DeviceTokenFactory(contact=push.contact, platform="android", token="tok-android")
    ios = DeviceTokenFactory(contact=push.contact, platform="ios", token="tok-ios")
    DeviceTokenFactory(contact=push.contact, platform="web")
    fcm.expect_request(SEND_PATH, method="POST").respond_with_json(
        {"name": "projects/waymark-test/messages/0:1"}
    )

    provider_id = FcmBackend().deliver(push, render(push, order="A-17"))

    assert provider_id == "projects/waymark-test/messages/0:1"
    assert sent_messages(fcm) == [
        {
            "token": token.token,
            "notification": {"title": "Hi Ada", "body": "Your order A-17 shipped."},
            "data": {"waymark_message_id": str(push.pk), "url": "acme://orders/A-17"},
        }
        for token in (android, ios)
    ]
    sends = [request for request, _ in fcm.log if request.path == SEND_PATH]
    assert {request.headers["Authorization"] for request in sends} == {"Bearer ya29.test-token"}


def test_the_access_token_is_fetched_once_for_many_messages(fcm, push):
    DeviceTokenFactory(contact=push.contact)
    fcm.expect_request(SEND_PATH).respond_with_json({"name": "projects/p/messages/1"})
    backend = FcmBackend()

    with backend.session() as session:
        session.deliver(push, render(push))
    backend.deliver(push, render(push))

    assert [request.path for request, _ in fcm.log] == ["/token", SEND_PATH, SEND_PATH]


def test_a_device_fcm_no_longer_knows_is_disabled_and_the_others_still_get_it(fcm, push):
    gone = DeviceTokenFactory(contact=push.contact, token="tok-gone")
    kept = DeviceTokenFactory(contact=push.contact, token="tok-kept")

    def answer(request):
        if json.loads(request.get_data())["message"]["token"] == "tok-gone":
            body = fcm_error(
                404, "NOT_FOUND", "Requested entity was not found.", fcm_code="UNREGISTERED"
            )
            return Response(json.dumps(body), status=404, content_type="application/json")
        return Response(
            json.dumps({"name": "projects/p/messages/2"}), content_type="application/json"
        )

    fcm.expect_request(SEND_PATH).respond_with_handler(answer)

    assert FcmBackend().deliver(push, render(push)) == "projects/p/messages/2"

    gone.refresh_from_db()
    kept.refresh_from_db()
    assert not gone.is_active and "UNREGISTERED" in gone.disabled_reason
    assert kept.is_active


@pytest.mark.parametrize(
    "error",
    [
        fcm_error(404, "NOT_FOUND", "Requested entity was not found.", fcm_code="UNREGISTERED"),
        fcm_error(
            400,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            fcm_code="INVALID_ARGUMENT",
        ),
        fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", fcm_code="SENDER_ID_MISMATCH"),
    ],
)
def test_when_every_device_is_rejected_the_address_is(fcm, push, error):
    tokens = [DeviceTokenFactory(contact=push.contact) for _ in range(2)]
    fcm.expect_request(SEND_PATH).respond_with_json(error, status=error["error"]["code"])

    with pytest.raises(AddressRejected, match="Every device was rejected"):
        FcmBackend().deliver(push, render(push))

    assert not DeviceToken.objects.filter(pk__in=[t.pk for t in tokens], disabled_at=None).exists()
    assert FcmBackend().address_for(push.contact) == ""


def test_an_invalid_message_fails_without_costing_the_contact_their_devices(fcm, push):
    token = DeviceTokenFactory(contact=push.contact)
    fcm.expect_request(SEND_PATH).respond_with_json(
        fcm_error(
            400,
            "INVALID_ARGUMENT",
            "Invalid value at 'message.data[0].value'",
            field="message.data[0].value",
        ),
        status=400,
    )

    with pytest.raises(PermanentDeliveryError) as caught:
        FcmBackend().deliver(push, render(push))

    assert not isinstance(caught.value, AddressRejected)
    token.refresh_from_db()
    assert token.is_active


@pytest.mark.parametrize(
    ("status", "code"), [(429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE")]
)
def test_quota_and_server_errors_are_transient_and_keep_the_devices(fcm, push, status, code):
    token = DeviceTokenFactory(contact=push.contact)
    fcm.expect_request(SEND_PATH).respond_with_json(
        fcm_error(status, code, "Try later", fcm_code=code), status=status
    )

    with pytest.raises(TransientDeliveryError, match=f"FCM answered {status}"):
        FcmBackend().deliver(push, render(push))

    token.refresh_from_db()
    assert token.is_active


def test_a_refused_token_exchange_fails_the_message(httpserver, fcm, push):
    DeviceTokenFactory(contact=push.contact)
    httpserver.clear_all_handlers()
    httpserver.expect_request("/token").respond_with_json(
        {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
    )

    with pytest.raises(PermanentDeliveryError, match="invalid_grant"):
        FcmBackend().deliver(push, render(push))

    assert [request.path for request, _ in httpserver.log] == ["/token"]


def test_an_fcm_that_does_not_answer_in_time_is_transient(fcm, push, settings, silent_server):
    DeviceTokenFactory(contact=push.contact)
    settings.FCM_API_URL = silent_server
    settings.WAYMARK_PROVIDER_TIMEOUT = 0.2

    with pytest.raises(TransientDeliveryError, match="Timeout"):
        FcmBackend().deliver(push, render(push))


def test_without_credentials_nothing_is_sent(settings, push):
    DeviceTokenFactory(contact=push.contact)
    settings.FCM_CREDENTIALS_FILE = ""

    with pytest.raises(PermanentDeliveryError, match="FCM_CREDENTIALS_FILE"):
        FcmBackend().deliver(push, render(push))


def test_a_contact_whose_devices_all_went_meanwhile_is_rejected(fcm, push):
    with pytest.raises(AddressRejected, match="no active device"):
        FcmBackend().deliver(push, render(push))


# --- outbox -----------------------------------------------------------------------


def test_the_outbox_lists_the_devices_it_would_go_to(outbox, push):
    DeviceTokenFactory(contact=push.contact, platform="ios", token="tok-1")
    backend = PushOutboxBackend()

    backend.deliver(push, render(push, order="A-1"))

    (line,) = outbox("push")
    assert line["title"] == "Hi Ada" and line["url"] == "acme://orders/A-1"
    assert line["devices"] == [{"platform": "ios", "token": "tok-1"}]
