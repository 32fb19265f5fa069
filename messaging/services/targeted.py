"""Targeted sends: one template to one contact, outside any journey (the API's
`/api/<medium>/target`).

They go through the same pipeline as a journey's sends (messages_send), so
consent, suppression, caps, quiet hours, tracking and retries all apply; the
answer is what the pipeline did, at once. A send is made at most once per
idempotency key: the caller's (an API client's Idempotency-Key header), or a
fresh one when it gives none.
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from contacts.services import ContactLookupError, contact_find, contact_get_or_create
from messaging.models import Message, Template
from messaging.services.sending import message_send
from subscriptions.models import Channel

# Iterable creates the user an unknown email names only when sending email or
# in-app messages; the other media need an address the contact must already have.
CREATES_CONTACT_BY_EMAIL = {Channel.Medium.EMAIL, Channel.Medium.IN_APP}

# Sends that may still go out, whose template therefore counts as sent to the
# contact when a repeat is not allowed.
_ON_ITS_WAY = (Message.Status.QUEUED, Message.Status.SENDING, Message.Status.SENT)


class TargetError(ValueError):
    """A targeted send that cannot be asked for; nothing was written."""


class TemplateNotFound(TargetError):
    pass


class WrongMedium(TargetError):
    pass


class UnknownRecipient(TargetError):
    def __init__(self, message, *, by_user_id: bool):
        super().__init__(message)
        self.by_user_id = by_user_id


class IdempotencyKeyReused(TargetError):
    """The key names an earlier send of another template or to another contact."""


@dataclass(frozen=True)
class TargetedSend:
    """What became of a targeted send.

    `status` is the message's (`sent`, `skipped`, `failed`, `queued`,
    `sending`), or `skipped` with no new message when the template was already
    sent to the contact and repeats were not allowed (`message` is then the
    earlier send). `send_at` is when a queued message will be tried.
    """

    message: Message
    status: str
    detail: str
    skip_reason: str = ""
    send_at: datetime | None = None
    replayed: bool = False
    contact_created: bool = False


def target_idempotency_key(*, client_key: str, api_key_id) -> str:
    """The Message key of a client's idempotency key, scoped to the API key that
    gave it (two integrations may number their sends alike). Hashed: the
    client's key may be long or hold anything."""
    digest = hashlib.sha256(client_key.encode("utf-8")).hexdigest()
    return f"api:{api_key_id}:{digest}"


def message_target(
    *,
    medium: str,
    template_id: int,
    email: str | None = None,
    user_id: str | None = None,
    data: dict | None = None,
    metadata: dict | None = None,
    send_at: datetime | None = None,
    allow_repeat: bool = True,
    idempotency_key: str | None = None,
    api_key_id: int | None = None,
) -> TargetedSend:
    """Send template `template_id` (of `medium`) to the contact named by email
    or, without one, by user id; see the module docstring.

    Raises TargetError (and writes nothing) when the template is unknown or of
    another medium, the contact is unknown and may not be created, or the
    idempotency key belongs to a different send. A past `send_at` sends now.
    """
    template = (
        Template.objects.select_related("message_type__channel").filter(pk=template_id).first()
    )
    if template is None:
        raise TemplateNotFound(f"No template with id {template_id}.")
    if template.medium != medium:
        raise WrongMedium(
            f"Template {template_id} is a {template.medium} template, not a {medium} one."
        )

    existing = None
    if idempotency_key:
        existing = Message.objects.filter(idempotency_key=idempotency_key).first()
    contact, created = _recipient(medium=medium, email=email, user_id=user_id, create=not existing)
    if existing is not None:
        return _replay(existing, contact=contact, template=template)

    if not allow_repeat and not template.message_type.channel.is_transactional:
        earlier = (
            Message.objects.filter(
                contact=contact, template=template, is_test=False, status__in=_ON_ITS_WAY
            )
            .order_by("-created_at")
            .first()
        )
        if earlier is not None:
            return TargetedSend(
                message=earlier,
                status=Message.Status.SKIPPED,
                detail="already sent to this contact; repeat marketing sends not allowed",
                skip_reason="repeat_marketing_send",
                contact_created=created,
            )

    if send_at is not None and send_at <= timezone.now():
        send_at = None
    context = {"data": dict(data or {})}
    if metadata:
        context["metadata"] = dict(metadata)
    result = message_send(
        contact=contact,
        template=template,
        idempotency_key=idempotency_key or f"api:{uuid.uuid4().hex}",
        origin=Message.Origin.API,
        origin_id=api_key_id,
        context=context,
        send_at=send_at,
    )
    return _outcome(result.message, result.detail, contact_created=created)


def _recipient(*, medium, email, user_id, create):
    contact = contact_find(email=email, user_id=user_id)
    if contact is not None:
        return contact, False
    if email and create and medium in CREATES_CONTACT_BY_EMAIL:
        try:
            return contact_get_or_create(email=email)
        except ContactLookupError as exc:  # pragma: no cover - email alone never conflicts
            raise UnknownRecipient(str(exc), by_user_id=False) from exc
    if email:
        raise UnknownRecipient(f"No contact has the email {email}.", by_user_id=False)
    raise UnknownRecipient(f"No contact has the userId {user_id}.", by_user_id=True)


def _replay(message, *, contact, template) -> TargetedSend:
    """A request repeated with the key of an earlier send: never a second send."""
    if message.contact_id != contact.pk or message.template_id != template.pk:
        raise IdempotencyKeyReused(
            "This idempotency key was used for a send of another template or to another contact."
        )
    if (
        message.status == Message.Status.QUEUED
        and not message.attempts
        and not (message.next_attempt_at)
    ):
        # The first request stopped between writing the row and sending it:
        # finish its work (the pipeline's lock keeps this to one send).
        result = message_send(
            contact=contact,
            template=template,
            idempotency_key=message.idempotency_key,
            origin=message.origin,
            context=message.context,
        )
        return _outcome(result.message, result.detail, replayed=True)
    # Otherwise the stored outcome stands; a send in progress or waiting for its
    # retry is the first request's (or the retry pass's) to finish.
    return _outcome(message, f"already {message.status}", replayed=True)


def _outcome(message, detail, **extra) -> TargetedSend:
    return TargetedSend(
        message=message,
        status=message.status,
        detail=detail,
        skip_reason=message.skip_reason,
        send_at=message.next_attempt_at if message.status == Message.Status.QUEUED else None,
        **extra,
    )
