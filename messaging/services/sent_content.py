"""The content of sent messages: kept WAYMARK_SENT_CONTENT_DAYS days, then pruned.

The sending pipeline writes it (messaging.services.sending); this prunes
what is older than the retention, in bounded chunks so that no statement
holds many locks or runs long, from the scheduler's pass (retry_tick).
"""

import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from messaging.models import SentContent

# Rows one DELETE removes; a pass stops after max_chunks of them.
PRUNE_CHUNK = 2000
# Seconds between two pruning passes of one scheduler process.
PRUNE_INTERVAL = 60.0

_next_prune_at = float("-inf")


def sent_content_prune(*, now=None, chunk: int = PRUNE_CHUNK, max_chunks: int = 50) -> int:
    """Delete the kept content of messages sent more than WAYMARK_SENT_CONTENT_DAYS
    days ago (all of it when the setting is 0), oldest first, `chunk` rows a
    statement, at most `max_chunks` statements. Returns how many were deleted."""
    now = now or timezone.now()
    days = settings.WAYMARK_SENT_CONTENT_DAYS
    old = SentContent.objects.all()
    if days > 0:
        old = old.filter(stored_at__lt=now - timedelta(days=days))
    deleted = 0
    for _ in range(max_chunks):
        # The (stored_at) index finds the oldest rows; each DELETE is one statement.
        batch = old.order_by("stored_at").values("pk")[:chunk]
        count, _ = SentContent.objects.filter(pk__in=batch).delete()
        deleted += count
        if count < chunk:
            break
    return deleted


def sent_content_prune_when_due(*, now=None) -> int:
    """sent_content_prune at most once every PRUNE_INTERVAL seconds in this process."""
    global _next_prune_at
    if time.monotonic() < _next_prune_at:
        return 0
    _next_prune_at = time.monotonic() + PRUNE_INTERVAL
    return sent_content_prune(now=now)
