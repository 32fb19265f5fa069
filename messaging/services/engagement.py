"""What happened to sent messages: deliveries, opens, clicks, bounces, complaints.

Each is one Engagement row (append-only), the first time of each kind is
stamped on the Message, and each becomes an event on the contact
(`emailOpen`, `emailClick`, ...) so journeys can branch or wait on it. A hard
bounce or a complaint suppresses the address; a complaint also unsubscribes
the contact from marketing email, with a consent record.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts.services import event_record
from messaging.models import Engagement, Message, Suppression
from subscriptions.models import Channel, ConsentSource
from subscriptions.services import subscription_set

Kind = Engagement.Kind

# Iterable's names for the events that engagement adds to a contact's history.
_EVENT_SUFFIX = {
    Kind.DELIVERED: "Delivered",
    Kind.OPENED: "Open",
    Kind.CLICKED: "Click",
    Kind.BOUNCED: "Bounce",
    Kind.COMPLAINED: "Complaint",
}
_MEDIUM_PREFIX = {
    Channel.Medium.EMAIL: "email",
    Channel.Medium.SMS: "sms",
    Channel.Medium.PUSH: "push",
    Channel.Medium.WEB_PUSH: "webPush",
    Channel.Medium.WHATSAPP: "whatsApp",
    Channel.Medium.IN_APP: "inApp",
    Channel.Medium.WEBHOOK: "webhook",
}


def engagement_event_name(medium: str, kind: str) -> str:
    """The contact event an engagement becomes, e.g. ("email", "opened") -> "emailOpen"."""
    return _MEDIUM_PREFIX.get(medium, medium) + _EVENT_SUFFIX[kind]


@dataclass(frozen=True)
class RecordedEngagement:
    engagement: Engagement | None
    # False when the provider event was seen before (a webhook re-delivered).
    created: bool
    first_of_kind: bool = False


def engagement_record(
    *,
    message: Message,
    kind: str,
    source: str,
    occurred_at: datetime | None = None,
    url: str = "",
    hard_bounce: bool = False,
    details: dict | None = None,
    provider_event_id: str | None = None,
) -> RecordedEngagement:
    """Record one engagement with a sent message, and what follows from it. One transaction."""
    occurred_at = occurred_at or timezone.now()
    try:
        with transaction.atomic():
            engagement = Engagement.objects.create(
                message=message,
                contact_id=message.contact_id,
                kind=kind,
                source=source,
                occurred_at=occurred_at,
                url=url[:2000],
                hard_bounce=hard_bounce,
                details=details or {},
                provider_event_id=provider_event_id or None,
            )
            first = bool(
                Message.objects.filter(
                    pk=message.pk, **{f"{Engagement.FIRST_TIME_FIELDS[kind]}__isnull": True}
                ).update(**{Engagement.FIRST_TIME_FIELDS[kind]: occurred_at})
            )
            _consequences(message, engagement)
    except IntegrityError:
        if (
            provider_event_id
            and Engagement.objects.filter(provider_event_id=provider_event_id).exists()
        ):
            return RecordedEngagement(engagement=None, created=False)
        raise
    return RecordedEngagement(engagement=engagement, created=True, first_of_kind=first)


def _consequences(message, engagement):
    if message.is_test or message.contact_id is None:
        return
    if engagement.kind == Kind.BOUNCED and engagement.hard_bounce and message.to_address:
        _suppress(message, Suppression.Reason.HARD_BOUNCE)
    if engagement.kind == Kind.COMPLAINED:
        if message.to_address:
            _suppress(message, Suppression.Reason.COMPLAINT)
        for channel in Channel.objects.filter(
            medium=Channel.Medium.EMAIL, kind=Channel.Kind.MARKETING
        ):
            subscription_set(
                contact=message.contact,
                channel=channel,
                status="unsubscribed",
                source=ConsentSource.COMPLAINT,
                note=f"Spam complaint about message {message.pk}",
            )
    data = {
        "messageId": message.pk,
        "templateId": message.template_id,
        "messageTypeId": message.message_type_id,
        "channelId": message.channel_id,
    }
    if engagement.url:
        data["url"] = engagement.url
    if message.origin == Message.Origin.JOURNEY and message.origin_id:
        data["enrollmentId"] = message.origin_id
    event_record(
        contact=message.contact,
        name=engagement_event_name(message.medium, engagement.kind),
        data=data,
        occurred_at=engagement.occurred_at,
        client_event_id=f"waymark-engagement-{engagement.pk}",
        template_id=message.template_id,
    )


def _suppress(message, reason):
    if message.medium != Channel.Medium.EMAIL:
        return
    Suppression.objects.get_or_create(
        address=message.to_address.lower(),
        defaults={"reason": reason, "note": f"message {message.pk}"},
    )
