"""Read paths of the messaging app that are more than one obvious query."""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, F, Q
from django.utils import timezone

from messaging.models import InAppMessage, Message
from messaging.services.resend import interrupted_messages_q
from subscriptions.models import Channel


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


# Messages failed or interrupted this recently are listed as needing
# attention; older ones are still found with the status filter.
ATTENTION_WINDOW = timedelta(days=7)


def attention_messages_q(*, now: datetime | None = None) -> Q:
    """Messages that need a person: failed, or interrupted mid-delivery (the
    outcome unknown), created within ATTENTION_WINDOW. Read through the
    (status, created_at) index."""
    now = now or timezone.now()
    Status = Message.Status
    # No redundant `status IN (...)`: PostgreSQL multiplies it in and then
    # expects a few hundred rows where there are thousands, and reads them all
    # to sort them instead of walking the newest first (300 ms against 60 ms
    # at 10,000,000 messages).
    return Q(is_test=False, created_at__gte=now - ATTENTION_WINDOW) & (
        Q(status=Status.FAILED) | interrupted_messages_q(now=now)
    )


@dataclass(frozen=True)
class MessagesToday:
    """What happened to the messages created since `since` (test sends left out)."""

    sent_by_medium: list[tuple[str, int]]
    skipped_by_reason: list[tuple[str, int]]
    queued: int
    failed: int
    bounced: int
    complained: int

    @property
    def sent(self) -> int:
        return sum(count for _, count in self.sent_by_medium)

    @property
    def skipped(self) -> int:
        return sum(count for _, count in self.skipped_by_reason)


def messages_today(*, since: datetime) -> MessagesToday:
    """Today's sends by medium, skips by reason, failures, and how many of
    today's sent messages bounced or drew a complaint so far.

    One grouped query over the rows created since `since`, read through the
    (status, created_at) index: never the whole send log.
    """
    Status = Message.Status
    rows = (
        Message.objects.filter(status__in=Status.values, created_at__gte=since, is_test=False)
        .order_by()
        .values("status", "medium", "skip_reason")
        .annotate(
            count=Count("pk"),
            bounced=Count("pk", filter=Q(bounced_at__isnull=False)),
            complained=Count("pk", filter=Q(complained_at__isnull=False)),
        )
    )
    sent, skipped = Counter(), Counter()
    queued = failed = bounced = complained = 0
    for row in rows:
        status = row["status"]
        if status == Status.SENT:
            sent[row["medium"]] += row["count"]
            bounced += row["bounced"]
            complained += row["complained"]
        elif status == Status.SKIPPED:
            skipped[row["skip_reason"]] += row["count"]
        elif status == Status.FAILED:
            failed += row["count"]
        else:
            queued += row["count"]
    media = dict(Channel.Medium.choices)
    reasons = dict(Message.SkipReason.choices)
    return MessagesToday(
        sent_by_medium=[(media.get(m, m), n) for m, n in sent.most_common()],
        skipped_by_reason=[(reasons.get(r, r or "Other"), n) for r, n in skipped.most_common()],
        queued=queued,
        failed=failed,
        bounced=bounced,
        complained=complained,
    )


def messages_needing_attention(*, cap: int, now: datetime | None = None) -> int:
    """How many messages need attention (attention_messages_q), counted up
    to `cap`: the count stops there rather than reading every row."""
    return Message.objects.filter(attention_messages_q(now=now)).order_by()[:cap].count()
