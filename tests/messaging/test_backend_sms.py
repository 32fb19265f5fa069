"""SMS: the phone number at send time, rendering, and delivery through Twilio's
Messages API (a local fake of it) or the development outbox."""

import base64
import logging
from urllib.parse import parse_qs

import pytest
from django.urls import reverse
from werkzeug import Response

from messaging.backends import (
    AddressRejected,
    InvalidAddress,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from messaging.backends.sms import SmsOutboxBackend, TwilioSmsBackend
from messaging.models import RejectedAddress
from messaging.rendering import RenderError
from tests.conftest import free_port
from tests.factories import ContactFactory, medium_message, medium_template

pytestmark = pytest.mark.django_db

MESSAGES_PATH = "/2010-04-01/Accounts/AC123/Messages.json"


@pytest.fixture
def twilio(httpserver, settings):
    """Twilio's API, played by a local server."""
    settings.TWILIO_API_URL = httpserver.url_for("").rstrip("/")
    settings.TWILIO_ACCOUNT_SID = "AC123"
    settings.TWILIO_AUTH_TOKEN = "auth-token"
    settings.TWILIO_SMS_FROM = "+15005550006"
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.WAYMARK_PROVIDER_TIMEOUT = 2
    return httpserver


def twilio_error(status, code, text):
    return {"code": code, "message": text, "more_info": "https://x", "status": status}


@pytest.fixture
def sms():
    template = medium_template("sms", text_body="Hi {{ contact.first_name }}, your code is 1234.")
    contact = ContactFactory(phone="+14155550123", attributes={"firstName": "Ada"})
    return medium_message(template, contact, to_address="+14155550123")


def render(backend, message):
    context = {"contact": {"first_name": message.contact.first_name}}
    return backend.render(message.template, context)


# --- address ----------------------------------------------------------------------


def test_the_address_is_the_contacts_phone_in_e164_form():
    backend = TwilioSmsBackend()

    assert backend.address_for(ContactFactory(phone="+14155550123")) == "+14155550123"
    # Stored unnormalised by bulk SQL: normalised when sent.
    assert backend.address_for(ContactFactory(phone="+1 (415) 555-0199")) == "+14155550199"
    assert backend.address_for(ContactFactory(phone="")) == ""


def test_a_stored_number_that_does_not_parse_is_an_invalid_address():
    contact = ContactFactory(phone="0415 555 0123")  # loaded before numbers were checked

    with pytest.raises(InvalidAddress, match="is not a valid phone number"):
        TwilioSmsBackend().address_for(contact)


def test_a_number_rejected_for_sms_is_an_invalid_address_for_sms_only():
    contact = ContactFactory(phone="+14155550123")
    RejectedAddress.objects.create(medium="sms", address="+14155550123", reason="STOP")

    with pytest.raises(InvalidAddress, match="refused for good: STOP"):
        SmsOutboxBackend().address_for(contact)


# --- templates --------------------------------------------------------------------


def test_a_template_without_text_is_refused():
    template = medium_template("sms", text_body="  ")

    assert TwilioSmsBackend().check_template(template) == {"text_body": "An SMS needs a text body."}
    assert TwilioSmsBackend().check_template(medium_template("sms", text_body="Hi")) == {}


def test_rendering_fills_the_text_and_lists_its_links():
    template = medium_template(
        "sms",
        text_body="Hi {{ contact.first_name }}! See https://acme.test/o/1. Or https://acme.test/help",
    )

    rendered = TwilioSmsBackend().render(template, {"contact": {"first_name": "<Ada>"}})

    # Plain text: nothing is HTML-escaped.
    assert rendered.text == "Hi <Ada>! See https://acme.test/o/1. Or https://acme.test/help"
    assert rendered.links == ("https://acme.test/o/1", "https://acme.test/help")


def test_a_message_that_renders_empty_or_too_long_fails_to_render():
    backend = TwilioSmsBackend()

    with pytest.raises(RenderError, match="empty"):
        backend.render(medium_template("sms", text_body="{{ nothing }}"), {})
    with pytest.raises(RenderError, match="at most 1600"):
        backend.render(medium_template("sms", text_body="x" * 1601), {})


# --- Twilio -----------------------------------------------------------------------


def test_twilio_receives_the_message_with_the_idempotency_key(twilio, sms):
    twilio.expect_oneshot_request(MESSAGES_PATH, method="POST").respond_with_json(
        {"sid": "SM0001", "status": "queued"}, status=201
    )
    backend = TwilioSmsBackend()

    provider_id = backend.deliver(sms, render(backend, sms))

    assert provider_id == "SM0001"
    (request, _), *_ = twilio.log
    assert parse_qs(request.get_data(as_text=True)) == {
        "To": ["+14155550123"],
        "From": ["+15005550006"],
        "Body": ["Hi Ada, your code is 1234."],
    }
    assert (
        request.headers["Authorization"]
        == "Basic " + base64.b64encode(b"AC123:auth-token").decode()
    )
    assert request.headers["I-Twilio-Idempotency-Token"] == sms.idempotency_key


def test_a_messaging_service_is_the_sender_when_set(twilio, sms, settings):
    settings.TWILIO_MESSAGING_SERVICE_SID = "MG42"
    twilio.expect_oneshot_request(MESSAGES_PATH).respond_with_json({"sid": "SM2"}, status=201)
    backend = TwilioSmsBackend()

    backend.deliver(sms, render(backend, sms))

    form = parse_qs(twilio.log[0][0].get_data(as_text=True))
    assert form["MessagingServiceSid"] == ["MG42"] and "From" not in form


def test_one_session_sends_a_batch(twilio):
    template = medium_template("sms", text_body="Hello")
    messages = [
        medium_message(template, ContactFactory(phone=number), to_address=number)
        for number in ("+14155550123", "+14155550124")
    ]
    twilio.expect_request(MESSAGES_PATH).respond_with_json({"sid": "SM"}, status=201)
    backend = TwilioSmsBackend()

    with backend.session() as session:
        ids = [session.deliver(message, backend.render(template, {})) for message in messages]

    assert ids == ["SM", "SM"]
    assert [parse_qs(r.get_data(as_text=True))["To"] for r, _ in twilio.log] == [
        ["+14155550123"],
        ["+14155550124"],
    ]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, twilio_error(429, 20429, "Too Many Requests")),
        (500, twilio_error(500, 20500, "Internal Server Error")),
        (503, "Service Unavailable"),
    ],
)
def test_rate_limits_and_server_errors_are_transient(twilio, sms, status, body):
    handler = twilio.expect_oneshot_request(MESSAGES_PATH)
    if isinstance(body, dict):
        handler.respond_with_json(body, status=status)
    else:
        handler.respond_with_data(body, status=status)
    backend = TwilioSmsBackend()

    with pytest.raises(TransientDeliveryError, match=f"Twilio answered {status}"):
        backend.deliver(sms, render(backend, sms))

    assert not RejectedAddress.objects.exists()


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (21211, "The 'To' number +14155550123 is not a valid phone number."),
        (21610, "Attempt to send to unsubscribed recipient"),
        (21614, "'To' number is not a valid mobile number"),
    ],
)
def test_a_number_twilio_refuses_for_good_is_rejected_and_not_used_again(twilio, sms, code, text):
    twilio.expect_oneshot_request(MESSAGES_PATH).respond_with_json(
        twilio_error(400, code, text), status=400
    )
    backend = TwilioSmsBackend()

    with pytest.raises(AddressRejected) as caught:
        backend.deliver(sms, render(backend, sms))

    assert caught.value.address == "+14155550123"
    assert f"error {code}" in str(caught.value)
    rejection = RejectedAddress.objects.get()
    assert (rejection.medium, rejection.address) == ("sms", "+14155550123")
    with pytest.raises(InvalidAddress, match=str(code)):
        backend.address_for(sms.contact)


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, 21606), (401, 20003), (404, 20404)],
)
def test_other_client_errors_are_permanent_and_reject_no_number(twilio, sms, status, code):
    twilio.expect_oneshot_request(MESSAGES_PATH).respond_with_json(
        twilio_error(status, code, "No"), status=status
    )
    backend = TwilioSmsBackend()

    with pytest.raises(PermanentDeliveryError) as caught:
        backend.deliver(sms, render(backend, sms))

    assert not isinstance(caught.value, AddressRejected)
    assert not RejectedAddress.objects.exists()


def test_a_twilio_that_does_not_answer_in_time_is_transient(settings, sms, silent_server):
    settings.TWILIO_API_URL = silent_server
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC123", "t"
    settings.TWILIO_SMS_FROM = "+15005550006"
    settings.WAYMARK_PROVIDER_TIMEOUT = 0.2
    backend = TwilioSmsBackend()

    with pytest.raises(TransientDeliveryError, match="Timeout"):
        backend.deliver(sms, render(backend, sms))


def test_a_twilio_that_cannot_be_reached_is_transient(settings, sms):
    settings.TWILIO_API_URL = f"http://127.0.0.1:{free_port()}"
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC123", "t"
    settings.TWILIO_SMS_FROM = "+15005550006"
    backend = TwilioSmsBackend()

    with pytest.raises(TransientDeliveryError, match="ConnectionError"):
        backend.deliver(sms, render(backend, sms))


def test_without_an_account_or_a_sender_nothing_is_sent(twilio, sms, settings):
    backend = TwilioSmsBackend()
    rendered = render(backend, sms)
    settings.TWILIO_SMS_FROM = ""
    with pytest.raises(PermanentDeliveryError, match="TWILIO_SMS_FROM"):
        backend.deliver(sms, rendered)
    settings.TWILIO_AUTH_TOKEN = ""
    with pytest.raises(PermanentDeliveryError, match="TWILIO_AUTH_TOKEN"):
        backend.deliver(sms, rendered)

    assert twilio.log == []


def test_an_accepted_message_whose_answer_is_unreadable_counts_as_sent(twilio, sms):
    twilio.expect_oneshot_request(MESSAGES_PATH).respond_with_response(
        Response("<html>queued</html>", status=201)
    )
    backend = TwilioSmsBackend()

    assert backend.deliver(sms, render(backend, sms)) == ""


# --- outbox -----------------------------------------------------------------------


def test_the_outbox_keeps_one_json_line_per_message_and_logs_it(outbox, sms, caplog):
    backend = SmsOutboxBackend()
    caplog.set_level(logging.INFO, logger="messaging.outbox")

    first = backend.deliver(sms, render(backend, sms))
    second = backend.deliver(sms, render(backend, sms))

    lines = outbox("sms")
    assert [line["id"] for line in lines] == [first, second]
    assert lines[0]["to"] == "+14155550123"
    assert lines[0]["text"] == "Hi Ada, your code is 1234."
    assert lines[0]["message_id"] == sms.pk
    assert "sms to +14155550123: Hi Ada, your code is 1234." in caplog.text


def test_the_outbox_refuses_a_typed_number_that_is_not_one(outbox):
    message = medium_message(medium_template("sms", text_body="Hi"), to_address="not a number")
    backend = SmsOutboxBackend()

    with pytest.raises(PermanentDeliveryError, match="not a valid phone number"):
        backend.deliver(message, backend.render(message.template, {}))

    assert outbox("sms") == []


def test_staff_delete_a_rejection_to_let_the_number_be_tried_again(admin_client):
    contact = ContactFactory(phone="+14155550123")
    rejection = RejectedAddress.objects.create(
        medium="sms", address="+14155550123", reason="Twilio answered 400 (error 21610)"
    )

    listing = admin_client.get(reverse("admin:messaging_rejectedaddress_changelist"))
    response = admin_client.post(
        reverse("admin:messaging_rejectedaddress_delete", args=[rejection.pk]), {"post": "yes"}
    )

    assert "+14155550123" in listing.content.decode()
    assert response.status_code == 302
    assert SmsOutboxBackend().address_for(contact) == "+14155550123"
