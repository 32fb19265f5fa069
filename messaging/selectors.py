"""Read paths of the messaging app that are more than one obvious query."""

from datetime import datetime

from django.db.models import F, Q
from django.utils import timezone

from messaging.models import InAppMessage, Message


def in_app_inbox(*, contact, count: int, now: datetime | None = None) -> list[InAppMessage]:
    """The contact's newest `count` in-app messages not yet expired, read or not,
    newest first (each with `template_id`). One query, on the inbox index."""
    now = now or timezone.now()
    return list(
        InAppMessage.objects.filter(contact=contact)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .annotate(template_id=F("message__template_id"))
        .order_by("-created_at", "-id")[:count]
    )


def sent_messages(
    *,
    contact,
    limit: int,
    template_ids: list[int] | None = None,
    media: list[str] | None = None,
    sent_from: datetime | None = None,
    sent_until: datetime | None = None,
) -> list[dict]:
    """The messages sent to `contact`, newest first, at most `limit`:
    {"id", "template_id", "medium", "sent_at"} each. Test sends are not theirs.

    One query, walking the (contact, sent_at) index backwards.
    """
    messages = Message.objects.filter(contact=contact, sent_at__isnull=False, is_test=False)
    if template_ids:
        messages = messages.filter(template_id__in=template_ids)
    if media:
        messages = messages.filter(medium__in=media)
    if sent_from is not None:
        messages = messages.filter(sent_at__gte=sent_from)
    if sent_until is not None:
        messages = messages.filter(sent_at__lte=sent_until)
    return list(
        messages.order_by("-sent_at", "-id").values("id", "template_id", "medium", "sent_at")[
            :limit
        ]
    )
