"""WhatsApp: the contact's phone number, sent through Twilio with whatsapp:
addresses (a local fake of Twilio's API), or written to the outbox."""

from urllib.parse import parse_qs

import pytest

from messaging.backends import AddressRejected, InvalidAddress, PermanentDeliveryError
from messaging.backends.sms import SmsOutboxBackend, TwilioWhatsAppBackend, WhatsAppOutboxBackend
from messaging.models import RejectedAddress
from tests.factories import ContactFactory, medium_message, medium_template

pytestmark = pytest.mark.django_db

MESSAGES_PATH = "/2010-04-01/Accounts/AC123/Messages.json"


@pytest.fixture
def twilio(httpserver, settings):
    settings.TWILIO_API_URL = httpserver.url_for("").rstrip("/")
    settings.TWILIO_ACCOUNT_SID = "AC123"
    settings.TWILIO_AUTH_TOKEN = "auth-token"
    settings.TWILIO_WHATSAPP_FROM = "+14155238886"
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    return httpserver


@pytest.fixture
def whatsapp():
    template = medium_template("whatsapp", text_body="Your order {{ event.order }} has shipped.")
    contact = ContactFactory(phone="+447911123456")
    return medium_message(template, contact, to_address="+447911123456")


def test_the_address_is_the_phone_number_and_check_and_render_are_the_sms_ones(whatsapp):
    backend = TwilioWhatsAppBackend()

    assert backend.address_for(whatsapp.contact) == "+447911123456"
    assert backend.check_template(medium_template("whatsapp", text_body="")) == {
        "text_body": "A WhatsApp message needs a text body."
    }
    assert backend.render(whatsapp.template, {"event": {"order": "A-1"}}).text == (
        "Your order A-1 has shipped."
    )


def test_twilio_gets_whatsapp_addresses(twilio, whatsapp):
    twilio.expect_oneshot_request(MESSAGES_PATH, method="POST").respond_with_json(
        {"sid": "SMwa"}, status=201
    )
    backend = TwilioWhatsAppBackend()

    provider_id = backend.deliver(whatsapp, backend.render(whatsapp.template, {}))

    assert provider_id == "SMwa"
    form = parse_qs(twilio.log[0][0].get_data(as_text=True))
    assert form["To"] == ["whatsapp:+447911123456"]
    assert form["From"] == ["whatsapp:+14155238886"]
    assert twilio.log[0][0].headers["I-Twilio-Idempotency-Token"] == whatsapp.idempotency_key


def test_a_number_refused_on_whatsapp_still_gets_sms(twilio, whatsapp):
    twilio.expect_oneshot_request(MESSAGES_PATH).respond_with_json(
        {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400}, status=400
    )
    backend = TwilioWhatsAppBackend()

    with pytest.raises(AddressRejected):
        backend.deliver(whatsapp, backend.render(whatsapp.template, {}))

    assert RejectedAddress.objects.get().medium == "whatsapp"
    with pytest.raises(InvalidAddress):
        backend.address_for(whatsapp.contact)
    assert SmsOutboxBackend().address_for(whatsapp.contact) == "+447911123456"


def test_without_a_whatsapp_sender_nothing_is_sent(twilio, whatsapp, settings):
    settings.TWILIO_WHATSAPP_FROM = ""
    backend = TwilioWhatsAppBackend()

    with pytest.raises(PermanentDeliveryError, match="TWILIO_WHATSAPP_FROM"):
        backend.deliver(whatsapp, backend.render(whatsapp.template, {}))

    assert twilio.log == []


def test_the_outbox_has_a_file_of_its_own(outbox, whatsapp):
    backend = WhatsAppOutboxBackend()

    backend.deliver(whatsapp, backend.render(whatsapp.template, {"event": {"order": "B-2"}}))

    (line,) = outbox("whatsapp")
    assert (line["to"], line["text"]) == ("+447911123456", "Your order B-2 has shipped.")
    assert outbox("sms") == []
