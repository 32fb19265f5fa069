"""SMS and WhatsApp: through Twilio's Messages API, or into the development outbox.

Both read the contact's phone number, normalised to E.164 at the instant of
sending; a number that does not parse (loaded before numbers were checked,
or by bulk SQL) is an invalid address, and so is one a provider refused for
good (messaging.models.RejectedAddress).
"""

import logging
import re
from contextlib import contextmanager

import requests
from django.conf import settings

from contacts.phones import InvalidPhoneNumber, normalise_phone
from messaging.backends import (
    AddressRejected,
    InvalidAddress,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from messaging.backends.base import Backend, Rendered
from messaging.backends.outbox import outbox_write
from messaging.models import RejectedAddress
from messaging.rendering import RenderError, render_string

logger = logging.getLogger(__name__)

# Twilio refuses longer bodies (it splits up to this into segments itself).
MAX_LENGTH = 1600
_URL = re.compile(r"https?://[^\s<>\"']+")


def _links_in(text: str) -> tuple:
    return tuple(dict.fromkeys(url.rstrip(".,;:!?)") for url in _URL.findall(text)))


class PhoneBase(Backend):
    """What SMS and WhatsApp share: the phone number, a text body, and the
    memory of numbers a provider refused."""

    template_fields = ("text_body",)
    # deliver() needs only message.to_address: a test can go to a typed number.
    sends_to_address = True
    noun = "A message"

    def address_for(self, contact) -> str:
        if not contact.phone:
            return ""
        try:
            number = normalise_phone(contact.phone)
        except InvalidPhoneNumber as exc:
            raise InvalidAddress(str(exc)) from None
        refusal = (
            RejectedAddress.objects.filter(medium=self.medium, address=number)
            .values_list("reason", flat=True)
            .first()
        )
        if refusal is not None:
            raise InvalidAddress(f"{number} was refused for good: {refusal}")
        return number

    def check_template(self, template) -> dict:
        if not template.text_body.strip():
            return {"text_body": f"{self.noun} needs a text body."}
        return {}

    def render(self, template, context, *, links=None) -> Rendered:
        text = render_string(template.text_body, context, html=False).strip()
        if not text:
            raise RenderError("The message rendered empty.")
        if len(text) > MAX_LENGTH:
            raise RenderError(
                f"The message is {len(text)} characters long; at most {MAX_LENGTH} can be sent."
            )
        return Rendered(text=text, links=_links_in(text))

    def recipient(self, message) -> str:
        """The E.164 number `message` goes to (a typed test address is normalised too)."""
        try:
            return normalise_phone(message.to_address)
        except InvalidPhoneNumber as exc:
            raise PermanentDeliveryError(str(exc)) from None

    def reject(self, number: str, reason: str) -> None:
        """Remember that `number` will never work on this medium."""
        RejectedAddress.objects.update_or_create(
            medium=self.medium, address=number, defaults={"reason": reason[:500]}
        )


class SmsBase(PhoneBase):
    medium = "sms"
    noun = "An SMS"

    def provider_address(self, number: str) -> str:
        return number


class WhatsAppBase(PhoneBase):
    medium = "whatsapp"
    noun = "A WhatsApp message"

    def provider_address(self, number: str) -> str:
        return f"whatsapp:{number}"


# --- Twilio ---------------------------------------------------------------------------

# Twilio error codes that say the number itself will never receive from us:
# 21211 invalid 'To' number, 21610 the recipient replied STOP, 21612 not
# reachable by SMS (a landline, an unsupported carrier), 21614 not a mobile number.
TWILIO_ADDRESS_REJECTED = {21211, 21610, 21612, 21614}
# Twilio's header for recognising a repeated request; its key is the
# message's idempotency key, the same on every retry of one message.
TWILIO_IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"


class _TwilioMixin:
    """Messages through Twilio's REST API (POST .../Accounts/<sid>/Messages.json)."""

    def sender(self) -> dict:
        raise NotImplementedError

    @contextmanager
    def session(self):
        http = requests.Session()
        try:
            yield _TwilioSession(self, http)
        finally:
            http.close()

    def deliver(self, message, rendered) -> str:
        with self.session() as session:
            return session.deliver(message, rendered)


class _TwilioSession:
    def __init__(self, backend, http):
        self.backend = backend
        self.http = http

    def deliver(self, message, rendered) -> str:
        backend = self.backend
        number = backend.recipient(message)
        account, token = settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN
        if not account or not token:
            raise PermanentDeliveryError(
                "Twilio is not set up: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN."
            )
        data = {"To": backend.provider_address(number), "Body": rendered.text, **backend.sender()}
        url = f"{settings.TWILIO_API_URL}/2010-04-01/Accounts/{account}/Messages.json"
        try:
            response = self.http.post(
                url,
                data=data,
                auth=(account, token),
                headers={TWILIO_IDEMPOTENCY_HEADER: message.idempotency_key},
                timeout=settings.WAYMARK_PROVIDER_TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TransientDeliveryError(f"Twilio: {type(exc).__name__}: {exc}") from exc
        if 200 <= response.status_code < 300:
            try:
                return str(response.json()["sid"])
            except (ValueError, KeyError, TypeError):
                # Accepted all the same: it is sent, only its id is unknown.
                return ""
        raise self._error(number, response)

    def _error(self, number, response):
        code, text = None, response.text[:300]
        try:
            body = response.json()
            code, text = body.get("code"), body.get("message") or text
        except (ValueError, AttributeError):
            pass
        detail = f"Twilio answered {response.status_code}"
        if code:
            detail += f" (error {code})"
        detail += f": {text}"
        if response.status_code == 429 or response.status_code >= 500:
            return TransientDeliveryError(detail)
        if code in TWILIO_ADDRESS_REJECTED:
            self.backend.reject(number, detail)
            return AddressRejected(detail, address=number)
        return PermanentDeliveryError(detail)


class TwilioSmsBackend(_TwilioMixin, SmsBase):
    """SMS through Twilio, from TWILIO_MESSAGING_SERVICE_SID or TWILIO_SMS_FROM."""

    def sender(self) -> dict:
        if settings.TWILIO_MESSAGING_SERVICE_SID:
            return {"MessagingServiceSid": settings.TWILIO_MESSAGING_SERVICE_SID}
        if settings.TWILIO_SMS_FROM:
            return {"From": settings.TWILIO_SMS_FROM}
        raise PermanentDeliveryError(
            "Twilio has no SMS sender: set TWILIO_SMS_FROM or TWILIO_MESSAGING_SERVICE_SID."
        )


class TwilioWhatsAppBackend(_TwilioMixin, WhatsAppBase):
    """WhatsApp through Twilio, from TWILIO_WHATSAPP_FROM (a WhatsApp sender of
    the account) or a Messaging Service that has one."""

    def sender(self) -> dict:
        sender = settings.TWILIO_WHATSAPP_FROM
        if sender:
            return {"From": sender if sender.startswith("whatsapp:") else f"whatsapp:{sender}"}
        if settings.TWILIO_MESSAGING_SERVICE_SID:
            return {"MessagingServiceSid": settings.TWILIO_MESSAGING_SERVICE_SID}
        raise PermanentDeliveryError(
            "Twilio has no WhatsApp sender: set TWILIO_WHATSAPP_FROM "
            "or TWILIO_MESSAGING_SERVICE_SID."
        )


# --- Development outbox ---------------------------------------------------------------


class SmsOutboxBackend(SmsBase):
    """Writes each SMS to WAYMARK_OUTBOX_DIR/sms.jsonl instead of sending it."""

    def deliver(self, message, rendered) -> str:
        number = self.recipient(message)
        return outbox_write(
            medium=self.medium, message=message, to=number, content={"text": rendered.text}
        )


class WhatsAppOutboxBackend(WhatsAppBase):
    """Writes each WhatsApp message to WAYMARK_OUTBOX_DIR/whatsapp.jsonl instead of sending it."""

    def deliver(self, message, rendered) -> str:
        number = self.recipient(message)
        return outbox_write(
            medium=self.medium, message=message, to=number, content={"text": rendered.text}
        )
