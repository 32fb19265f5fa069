"""Staff re-sending a message whose delivery was interrupted.

A worker that dies between handing a message to its backend and recording
the outcome leaves the row `sending`. The next run of its journey step then
records it failed with `Message.INTERRUPTED_ERROR` instead of sending again,
since it may well have arrived; a message no step runs again (a one-off API
send, a retry) stays `sending`. Only a person can decide it did not arrive.
Re-sending puts the row back in the queue for messaging's retry pass, which
sends it as it sends any retry (consent, the journey and the caps checked
again at that instant), and records who asked.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from messaging.models import Message

Status = Message.Status


def interrupted_since(now: datetime) -> datetime:
    """`sending` rows last touched before this have no worker left on them.

    rq stops a send job after twelve leases (the job timeout the scheduler
    sets), so a row still `sending` by then was orphaned by a dead worker.
    """
    return now - settings.WAYMARK_ENGINE["LEASE"] * 12


def interrupted_messages_q(*, now: datetime | None = None) -> Q:
    """Messages whose delivery was interrupted: recorded as of unknown outcome,
    or still `sending` long after any worker could be on them."""
    now = now or timezone.now()
    return Q(is_test=False) & (
        Q(status=Status.FAILED, error=Message.INTERRUPTED_ERROR)
        | Q(status=Status.SENDING, updated_at__lt=interrupted_since(now))
    )


@dataclass(frozen=True)
class Resend:
    resent: int
    # Chosen but not interrupted (sent, skipped, still in flight…): left alone.
    refused: int


def messages_resend(*, messages: QuerySet, actor: str, now: datetime | None = None) -> Resend:
    """Queue the interrupted ones among `messages` to be sent again, on purpose.

    The same row is sent again (its metrics stay one message), by the next
    retry pass. Each is re-sent once per request: a row re-sent is `queued`,
    no longer interrupted, so a second click or a second person finds
    nothing to do.
    """
    now = now or timezone.now()
    with transaction.atomic():
        chosen = messages.count()
        resent = messages.filter(interrupted_messages_q(now=now)).update(
            status=Status.QUEUED,
            next_attempt_at=now,
            failed_at=None,
            locked_until=None,
            lease_token=None,
            error=f"Re-sent by {actor}: the earlier delivery's outcome was unknown.",
            resent_by=actor[:150],
            resent_at=now,
            updated_at=now,
        )
    return Resend(resent=resent, refused=chosen - resent)
