"""Delivery and engagement reported by email providers through django-anymail.

Anymail verifies each webhook (the provider's signature, and/or the basic
auth secret ANYMAIL_WEBHOOK_SECRET) before it sends its `tracking` signal;
what arrives here is normalised and trusted. A message is found by the id
Waymark gave the provider in its metadata, else by the provider's message id.
"""

import logging
import re

from anymail.signals import EventType, RejectReason

from contacts.models import Contact
from messaging.models import Engagement, Message
from messaging.services.engagement import engagement_record
from subscriptions.models import ConsentSource, MessageType
from subscriptions.services import ConsentError, subscription_set, unsubscribe_one_click
from subscriptions.tokens import BadToken, ids_from_unsubscribe_token

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


# The subject a List-Unsubscribe mailto: link fills in (messaging.context.unsubscribe_mailto).
_UNSUBSCRIBE_SUBJECT = re.compile(r"\bunsubscribe\s+(\S+)", re.IGNORECASE)


def inbound_unsubscribe_record(*, message, esp_name: str) -> bool:
    """An email to the List-Unsubscribe mailto: address, received through
    anymail's inbound webhook: unsubscribe as the one-click link would.

    The subject carries the signed unsubscribe token; anything else (a reply
    to the address, a tampered token) changes nothing. Returns whether it
    unsubscribed someone.
    """
    match = _UNSUBSCRIBE_SUBJECT.search(message.subject or "")
    if match is None:
        return False
    try:
        contact_id, message_type_id = ids_from_unsubscribe_token(match.group(1))
    except BadToken:
        logger.info("%s inbound unsubscribe with an invalid token", esp_name)
        return False
    contact = Contact.objects.filter(pk=contact_id).first()
    message_type = MessageType.objects.select_related("channel").filter(pk=message_type_id).first()
    if contact is None or message_type is None:
        return False
    try:
        change = unsubscribe_one_click(
            contact=contact, message_type=message_type, user_agent=f"mailto via {esp_name}"
        )
    except ConsentError:
        return False
    return change.changed
