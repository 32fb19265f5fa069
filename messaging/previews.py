"""What a template looks like when sent: rendered for one contact and sample event data.

A preview shows a contact's data, so only staff who may view contacts choose
whose: everyone else gets the sample contact, whatever address they give,
and the same page whether or not that address belongs to a contact.
"""

import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from contacts.models import Contact
from contacts.phones import InvalidPhoneNumber, normalise_phone
from messaging.backends import get_backend
from messaging.backends.email import from_header
from messaging.context import message_context
from messaging.models import Message, Template
from messaging.rendering import (
    RenderError,
    missing_variables,
    render_string,
    template_variables,
)
from messaging.services import message_send_test
from subscriptions.models import Channel

SAMPLE_EMAIL = "sample@example.com"


def sample_contact() -> Contact:
    """A contact that exists only in previews (never saved)."""
    return Contact(email=SAMPLE_EMAIL, attributes={"firstName": "Sam"})


@dataclass(frozen=True)
class Preview:
    """A rendered template. The rendered parts come from the template engine
    marked safe: a page showing them must escape them itself (`force_escape`)."""

    template: Template
    contact: Contact | None
    is_sample: bool
    # The viewer may not choose a contact (no permission to view contacts).
    sample_only: bool = False
    # Problems with what the marketer typed: no preview is rendered then.
    email_error: str = ""
    event_error: str = ""
    # The template itself failed to render.
    render_error: str = ""
    subject: str = ""
    preheader: str = ""
    from_header: str = ""
    reply_to: str = ""
    html: str = ""
    text: str = ""
    # The context variables the template reads, and those this contact and
    # event data lack (they render blank).
    variables: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def is_email(self) -> bool:
        return self.template.medium == Channel.Medium.EMAIL

    @property
    def rendered(self) -> bool:
        return not (self.email_error or self.event_error or self.render_error)


def _pick_contact(email: str) -> tuple[Contact | None, bool, str]:
    if not email:
        return sample_contact(), True, ""
    try:
        validate_email(email)
    except ValidationError:
        return None, False, f"{email} is not an email address."
    contact = Contact.objects.filter(email=email).first()  # unique: one row at most
    if contact is None:
        return None, False, f"No contact has the email address {email}."
    return contact, False, ""


def _parse_event(event_json: str) -> tuple[dict, str]:
    if not event_json.strip():
        return {}, ""
    try:
        event = json.loads(event_json)
    except RecursionError:
        return {}, "The event data is nested too deeply."
    except ValueError as exc:
        return {}, f"The event data is not valid JSON: {exc}."
    if not isinstance(event, dict):
        return {}, 'The event data must be a JSON object, like {"plan": "pro"}.'
    return event, ""


def template_preview(
    *,
    template: Template,
    email: str | None = None,
    event_json: str = "",
    may_choose_contact: bool = True,
) -> Preview:
    """Render the saved `template` as a send would for the contact with exactly
    `email` (the sample contact when empty, or when not `may_choose_contact`),
    with `event_json` as the journey's trigger data and placeholder links.

    Nothing is sent or stored. Render failures come back in `render_error`
    rather than raised: a broken template is what the marketer needs to see.
    """
    email = (email or "").strip()
    if may_choose_contact:
        contact, is_sample, email_error = _pick_contact(email)
    else:  # never looked up: the page must not tell whether the address is a contact's
        contact, is_sample, email_error = sample_contact(), True, ""
    event, event_error = _parse_event(event_json or "")
    shown = {"template": template, "contact": contact, "is_sample": is_sample}
    shown["sample_only"] = not may_choose_contact
    if email_error or event_error:
        return Preview(**shown, email_error=email_error, event_error=event_error)

    context = message_context(contact=contact, event=event)
    variables = template_variables(*(getattr(template, f) for f in Template.TEMPLATE_FIELDS))
    shown["variables"] = tuple(variables)
    shown["missing"] = tuple(missing_variables(variables, context))
    try:
        if template.medium == Channel.Medium.EMAIL:
            rendered = get_backend(template.medium).preview(template, context)
            return Preview(
                **shown,
                subject=rendered.subject,
                preheader=render_string(template.preheader, context, html=False),
                from_header=from_header(template),
                reply_to=template.reply_to,
                html=rendered.html,
                text=rendered.text,
            )
        text = render_string(template.text_body, context, html=False)
    except RenderError as exc:
        return Preview(**shown, render_error=str(exc))
    return Preview(**shown, text=text)


@dataclass(frozen=True)
class SendTestOutcome:
    """What became of a test send asked for on the preview page: `message` says
    it to the person who asked; `sent` is False for input that was refused
    and for a send that failed."""

    sent: bool
    message: str


def template_send_test(
    *,
    template: Template,
    to_address: str,
    email: str = "",
    event_json: str = "",
    may_choose_contact: bool = True,
) -> SendTestOutcome:
    """Send `template` as a test to `to_address`, rendered as the preview with
    the same `email` and `event_json` renders it (messaging.services.message_send_test:
    "[Test]" in the subject, placeholder links, no consent check, no metric)."""
    to_address = (to_address or "").strip()
    if not to_address:
        return SendTestOutcome(False, f"Give the {recipient_noun(template)} to send the test to.")
    problem = _test_address_problem(template, to_address)
    if problem:
        return SendTestOutcome(False, problem)
    if may_choose_contact:
        contact, _, problem = _pick_contact((email or "").strip())
    else:
        contact, problem = sample_contact(), ""
    event, event_problem = _parse_event(event_json or "")
    if problem or event_problem:
        return SendTestOutcome(False, problem or event_problem)
    try:
        result = message_send_test(
            template=template, to_address=to_address, contact=contact, event=event
        )
    except ValueError as exc:  # a medium without addresses
        return SendTestOutcome(False, str(exc))
    if result.message.status == Message.Status.SENT:
        return SendTestOutcome(True, f"A test of “{template}” was sent to {to_address}.")
    reason = result.message.error or result.detail
    return SendTestOutcome(False, f"The test could not be sent: {reason}")


_PHONE_MEDIA = (Channel.Medium.SMS, Channel.Medium.WHATSAPP)


def recipient_noun(template: Template) -> str:
    """What a test of `template` is sent to, in words."""
    return "phone number" if template.medium in _PHONE_MEDIA else "address"


def _test_address_problem(template, to_address) -> str:
    if template.medium in _PHONE_MEDIA:
        try:
            normalise_phone(to_address)
        except InvalidPhoneNumber as exc:
            return str(exc)
        return ""
    try:
        validate_email(to_address)
    except ValidationError:
        return f"{to_address} is not an email address."
    return ""
