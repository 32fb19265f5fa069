"""Messaging's own retries: due `Message` rows claimed and delivered again.

A message whose delivery failed in a way that may recover is left `queued`
with `next_attempt_at`. The scheduler calls `messages_claim_due`, which leases
due rows (SELECT … FOR UPDATE SKIP LOCKED, as the journey engine claims
enrollments) and enqueues one rq job per batch once the claim commits. The
job runs `messages_retry`, which sends them through the same pipeline as a
first attempt, consent re-checked. If Redis loses the job, the lease runs
out and a later pass claims the rows again. Sends made outside any journey
(the API's one-off sends, double opt-in confirmations) retry the same way.
"""

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from contacts.leases import rows_claim
from contacts.redis import default_queue
from messaging.models import Message
from messaging.services.sending import _assert_outside_transaction, _attempt, _Item
from messaging.services.sent_content import sent_content_prune_when_due


@dataclass(frozen=True)
class RetryClaim:
    token: uuid.UUID
    message_ids: list


def messages_claim_due(*, now=None, limit=None, enqueue=True) -> RetryClaim | None:
    """Lease up to `limit` queued messages whose next attempt is due, or None."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = rows_claim(
            queryset=Message.objects.filter(status=Message.Status.QUEUED, next_attempt_at__lte=now),
            order_by="next_attempt_at",
            now=now,
            lease=settings.WAYMARK_ENGINE["LEASE"],
            limit=limit or settings.WAYMARK_ENGINE["BATCH_SIZE"],
        )
        if claimed is None:
            return None
        claim = RetryClaim(token=claimed[0], message_ids=claimed[1])
        if enqueue:
            transaction.on_commit(lambda: enqueue_retry(claim))
    return claim


def enqueue_retry(claim: RetryClaim):
    from messaging.tasks import messaging_retry_task

    default_queue().enqueue(
        messaging_retry_task,
        message_ids=claim.message_ids,
        token=str(claim.token),
        job_timeout=int(settings.WAYMARK_ENGINE["LEASE"].total_seconds()) * 12,
    )


def messages_retry(*, message_ids, token) -> dict:
    """Try again every message of a claim this token still holds. Returns counts per status."""
    _assert_outside_transaction()
    token = uuid.UUID(str(token))
    rows = list(
        Message.objects.select_related("contact", "template__message_type__channel")
        .filter(
            pk__in=message_ids,
            lease_token=token,
            locked_until__gt=timezone.now(),
            status=Message.Status.QUEUED,
        )
        .order_by("pk")
    )
    items = [
        _Item(index, row, row.contact, row.template, lease_token=token)
        for index, row in enumerate(rows)
    ]
    counts = {}
    for _, result in _attempt(items):
        status = "abandoned" if result.abandoned else result.message.status
        counts[status] = counts.get(status, 0) + 1
    return counts


def retry_tick(*, now=None, max_batches=20) -> int:
    """One pass: claim and enqueue due retries, and (once a minute) prune the
    content of sent messages past its retention. Returns how many messages
    were handed on."""
    sent_content_prune_when_due(now=now)
    handed = 0
    for _ in range(max_batches):
        claim = messages_claim_due(now=now)
        if claim is None:
            break
        handed += len(claim.message_ids)
    return handed
