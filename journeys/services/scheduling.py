"""Finding due work in the database and handing it to workers.

The database is the queue: any enrollment whose `next_run_at` has passed and
that nobody holds a live lease on is due. Claiming sets a lease in the same
transaction that picks the rows (SKIP LOCKED on PostgreSQL), and the rq job
is enqueued only after that commits. If Redis loses the job, the lease runs
out and the next pass claims the enrollment again.
"""

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from contacts.leases import rows_claim
from contacts.redis import default_queue
from journeys.models import Enrollment, Journey


@dataclass(frozen=True)
class Claim:
    token: uuid.UUID
    enrollment_ids: list


def enrollments_claim_due(*, now=None, limit=None, enqueue=True) -> Claim | None:
    """Lease up to `limit` due enrollments of live journeys, or None if none are due.

    With `enqueue` (the default) an rq job for the batch is enqueued once the
    claim commits; without, the caller runs the batch itself.
    """
    now = now or timezone.now()
    with transaction.atomic():
        claimed = rows_claim(
            queryset=Enrollment.objects.filter(
                state__in=Enrollment.OPEN_STATES,
                next_run_at__lte=now,
                journey__state=Journey.State.LIVE,
            ),
            order_by="next_run_at",
            now=now,
            lease=settings.WAYMARK_ENGINE["LEASE"],
            limit=limit or settings.WAYMARK_ENGINE["BATCH_SIZE"],
        )
        if claimed is None:
            return None
        claim = Claim(token=claimed[0], enrollment_ids=claimed[1])
        if enqueue:
            transaction.on_commit(lambda: enqueue_advance(claim))
    return claim


def enqueue_advance(claim: Claim):
    from journeys.tasks import journeys_advance_task

    default_queue().enqueue(
        journeys_advance_task,
        enrollment_ids=claim.enrollment_ids,
        token=str(claim.token),
        # The job renews its leases as it goes; this only stops a job that hangs.
        job_timeout=int(settings.WAYMARK_ENGINE["LEASE"].total_seconds()) * 12,
    )


def scheduler_tick(*, now=None, max_batches=20) -> int:
    """One scheduler pass: claim and enqueue due work, batch by batch.

    Due passages of contacts who no longer match their journey's audience
    leave it first, so no step runs for them. Returns how many enrollments
    were handed to workers.
    """
    from journeys.services.triggers import journeys_audience_exit

    journeys_audience_exit(now=now, due_only=True)
    handed = 0
    for _ in range(max_batches):
        claim = enrollments_claim_due(now=now)
        if claim is None:
            break
        handed += len(claim.enrollment_ids)
    return handed
