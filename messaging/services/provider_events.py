"""Delivery and engagement reported by email providers through django-anymail.

Anymail verifies each webhook (the provider's signature, and/or the basic
auth secret ANYMAIL_WEBHOOK_SECRET) before it sends its `tracking` signal;
what arrives here is normalised and trusted. A message is found by the id
Waymark gave the provider in its metadata, else by the provider's message id.
"""

import logging

from anymail.signals import EventType, RejectReason

from messaging.models import Engagement, Message
from messaging.services.engagement import engagement_record
from subscriptions.models import ConsentSource
from subscriptions.services import subscription_set

logger = logging.getLogger(__name__)

METADATA_KEY = "waymark_message_id"

_KINDS = {
    EventType.DELIVERED: Engagement.Kind.DELIVERED,
    EventType.OPENED: Engagement.Kind.OPENED,
    EventType.CLICKED: Engagement.Kind.CLICKED,
    EventType.BOUNCED: Engagement.Kind.BOUNCED,
    EventType.COMPLAINED: Engagement.Kind.COMPLAINED,
}
# A provider refusing to send because of the address itself is a hard bounce
# for our purposes: sending there again cannot work.
_HARD_REJECTIONS = {RejectReason.BOUNCED, RejectReason.INVALID, RejectReason.TIMED_OUT}


def _message_for(event):
    metadata = event.metadata or {}
    message_id = str(metadata.get(METADATA_KEY, ""))
    if message_id.isdigit():
        message = Message.objects.select_related("contact").filter(pk=int(message_id)).first()
        if message is not None:
            return message
    if event.message_id:
        return (
            Message.objects.select_related("contact")
            .filter(provider_message_id=event.message_id)
            .order_by("-pk")
            .first()
        )
    return None


def provider_event_record(*, event, esp_name: str):
    """Apply one normalised anymail tracking event; returns the engagement or None."""
    message = _message_for(event)
    if message is None or message.is_test:
        logger.info("%s %s event for an unknown message %r", esp_name, event.event_type, event)
        return None
    event_id = f"{esp_name}:{event.event_id}" if event.event_id else None
    details = {"provider": esp_name}
    for name in ("description", "mta_response", "user_agent", "reject_reason"):
        value = getattr(event, name, None)
        if value:
            details[name] = str(value)[:1000]

    if event.event_type == EventType.UNSUBSCRIBED:
        # The provider's own unsubscribe link: honour it like ours.
        if message.contact_id:
            subscription_set(
                contact=message.contact,
                message_type=message.message_type,
                status="unsubscribed",
                source=ConsentSource.PROVIDER,
                note=f"{esp_name} unsubscribe, message {message.pk}",
            )
        return None
    kind = _KINDS.get(event.event_type)
    hard_bounce = event.event_type == EventType.BOUNCED
    if event.event_type == EventType.REJECTED and event.reject_reason in _HARD_REJECTIONS:
        kind, hard_bounce = Engagement.Kind.BOUNCED, True
    if kind is None:
        return None
    return engagement_record(
        message=message,
        kind=kind,
        source=Engagement.Source.PROVIDER,
        occurred_at=event.timestamp,
        url=event.click_url or "",
        hard_bounce=hard_bounce,
        details=details,
        provider_event_id=event_id,
    ).engagement
