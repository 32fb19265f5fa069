"""The sending pipeline: render → check → deliver → record, on one Message row."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from messaging.backends import PermanentDeliveryError, TransientDeliveryError, get_backend
from messaging.models import Message, Suppression, Template
from messaging.rendering import RenderError, contact_context
from subscriptions.models import Channel, MessageType
from subscriptions.services import contact_consent_skip_reason

logger = logging.getLogger(__name__)

Status = Message.Status
SkipReason = Message.SkipReason


@dataclass(frozen=True)
class SendResult:
    message: Message
    # Set when delivery failed in a way that may recover: try again then,
    # with the same idempotency key.
    retry_at: datetime | None = None
    detail: str = ""


def _address_for(contact, medium):
    if medium == Channel.Medium.EMAIL:
        return contact.email or ""
    if medium in (Channel.Medium.SMS, Channel.Medium.WHATSAPP):
        return contact.phone or ""
    return ""


def _period_start(contact, period, now):
    try:
        tz = ZoneInfo(contact.timezone) if contact.timezone else timezone.get_default_timezone()
    except (KeyError, ValueError):
        tz = timezone.get_default_timezone()
    local = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == MessageType.Period.WEEK:
        local -= timedelta(days=local.weekday())
    return local


def _skip_reason(message, contact, message_type, now):
    if contact.blocklisted:
        return SkipReason.BLOCKLISTED
    if not message.to_address:
        return SkipReason.NO_ADDRESS
    reason = contact_consent_skip_reason(contact=contact, message_type=message_type)
    if reason:
        return reason
    if (
        message.medium == Channel.Medium.EMAIL
        and Suppression.objects.filter(address=message.to_address).exists()
    ):
        return SkipReason.SUPPRESSED
    if message_type.frequency_limit and not message_type.channel.is_transactional:
        sent = (
            Message.objects.filter(
                contact=contact,
                message_type=message_type,
                sent_at__gte=_period_start(contact, message_type.frequency_period, now),
            )
            .exclude(pk=message.pk)
            .count()
        )
        if sent >= message_type.frequency_limit:
            return SkipReason.FREQUENCY_CAP
    return None


def _finish(message, **fields):
    """Write the given fields to the stored row and the instance (autocommitted)."""
    fields["updated_at"] = timezone.now()
    Message.objects.filter(pk=message.pk).update(**fields)
    for name, value in fields.items():
        setattr(message, name, value)
    return message


def _record_first(message, **fields):
    """Store an outcome for a message seen for the first time, or for a queued
    retry. Returns the row as stored, or None when another process got there
    first (the caller then reports that row's outcome)."""
    for name, value in fields.items():
        setattr(message, name, value)
    if message.pk is None:
        try:
            with transaction.atomic():
                message.save(force_insert=True)
        except IntegrityError:
            return None
        return message
    fields["updated_at"] = timezone.now()
    fields["to_address"] = message.to_address
    if "attempts" in fields:
        fields["attempts"] = F("attempts") + 1
    if not Message.objects.filter(pk=message.pk, status=Status.QUEUED).update(**fields):
        return None
    message.refresh_from_db(fields=["attempts"])
    return message


def _retry_delay(attempt):
    return settings.WAYMARK_SENDING["RETRY_BASE"] * (4 ** max(0, attempt - 1))


def message_send(
    *, contact, template: Template, idempotency_key: str, context: dict, origin: str
) -> SendResult:
    """Send `template` to `contact` at most once for `idempotency_key`.

    Must run outside a transaction: the row is marked `sending` and committed
    before the backend is called, so a worker killed mid-delivery leaves a
    trace and the message is never handed over twice. A re-run with the same
    key returns the recorded outcome. Transient failures return `retry_at`
    until WAYMARK_SENDING["MAX_ATTEMPTS"] is reached.
    """
    now = timezone.now()
    message_type = template.message_type
    medium = message_type.channel.medium
    message = Message.objects.filter(idempotency_key=idempotency_key).first()
    if message is not None and message.status == Status.SENDING:
        # A previous attempt died between handing the message over and
        # recording the result. Sending again could deliver it twice.
        _finish(
            message,
            status=Status.FAILED,
            failed_at=now,
            error="Delivery was interrupted; the outcome is unknown, so it was not sent again.",
        )
        return SendResult(message, detail="interrupted")
    if message is not None and message.status in Message.FINAL:
        return SendResult(message, detail=f"already {message.status}")
    if message is None:
        # Not stored yet: the row is written once, with its first outcome.
        message = Message(
            idempotency_key=idempotency_key,
            contact=contact,
            template=template,
            message_type=message_type,
            medium=medium,
            origin=origin,
        )

    def already_handled():
        stored = Message.objects.get(idempotency_key=idempotency_key)
        return SendResult(stored, detail=f"already {stored.status}")

    # Consent and addresses are read now, at send time, not when queued.
    message.to_address = _address_for(contact, medium)
    reason = _skip_reason(message, contact, message_type, now)
    if reason:
        if not _record_first(message, status=Status.SKIPPED, skip_reason=reason):
            return already_handled()
        return SendResult(message, detail=f"skipped: {reason}")

    render_context = {**contact_context(contact), **context}
    try:
        if medium != Channel.Medium.EMAIL:
            raise RenderError(f"No delivery backend for {medium} messages yet.")
        rendered = get_backend(medium).render(template, render_context)
    except RenderError as exc:
        if not _record_first(message, status=Status.FAILED, failed_at=now, error=str(exc)):
            return already_handled()
        return SendResult(message, detail="render failed")

    # Committed before the backend is called: the at-most-once guard.
    if not _record_first(
        message,
        status=Status.SENDING,
        attempts=message.attempts + 1,
        subject=rendered.subject[:500],
    ):
        return already_handled()

    try:
        provider_id = get_backend(medium).deliver(message, rendered)
    except TransientDeliveryError as exc:
        if message.attempts >= settings.WAYMARK_SENDING["MAX_ATTEMPTS"]:
            _finish(message, status=Status.FAILED, failed_at=timezone.now(), error=str(exc))
            return SendResult(message, detail="failed after retries")
        retry_at = timezone.now() + _retry_delay(message.attempts)
        _finish(message, status=Status.QUEUED, next_attempt_at=retry_at, error=str(exc))
        logger.warning("message %s: %s; retrying at %s", message.pk, exc, retry_at)
        return SendResult(message, retry_at=retry_at, detail="will retry")
    except PermanentDeliveryError as exc:
        _finish(message, status=Status.FAILED, failed_at=timezone.now(), error=str(exc))
        return SendResult(message, detail="delivery refused")
    _finish(
        message,
        status=Status.SENT,
        sent_at=timezone.now(),
        provider_message_id=provider_id,
        next_attempt_at=None,
        error="",
    )
    return SendResult(message, detail="sent")
