"""Finding due work in the database and handing it to workers.

The database is the queue: any enrollment whose `next_run_at` has passed, or
that an event woke (a Wakeup), and that nobody holds a live lease on is due.
Claiming sets a lease in the same transaction that picks the rows (SKIP
LOCKED on PostgreSQL), and the rq job is enqueued only after that commits.
If Redis loses the job, the lease runs out and the next pass claims the
enrollment again.
"""

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from contacts.leases import rows_claim
from contacts.redis import default_queue, redis_client
from journeys.models import Enrollment, Journey, Wakeup


@dataclass(frozen=True)
class Claim:
    token: uuid.UUID
    enrollment_ids: list


def enrollments_claim_due(*, now=None, limit=None, enqueue=True) -> Claim | None:
    """Lease up to `limit` due enrollments of live journeys, or None if none are due.

    Enrollments an event woke (a Wakeup) come first, then those whose
    `next_run_at` has passed, in one claim. With `enqueue` (the default) an
    rq job for the batch is enqueued once the claim commits; without, the
    caller runs the batch itself.
    """
    now = now or timezone.now()
    limit = limit or settings.WAYMARK_ENGINE["BATCH_SIZE"]
    lease = settings.WAYMARK_ENGINE["LEASE"]
    with transaction.atomic():
        woken = _claim_woken(now=now, lease=lease, limit=limit)
        token, ids = woken if woken else (uuid.uuid4(), [])
        if len(ids) < limit:
            claimed = rows_claim(
                queryset=Enrollment.objects.filter(
                    state__in=Enrollment.OPEN_STATES,
                    next_run_at__lte=now,
                    journey__state=Journey.State.LIVE,
                ),
                order_by="next_run_at",
                now=now,
                lease=lease,
                limit=limit - len(ids),
                token=token,
            )
            if claimed is not None:
                ids += claimed[1]
        if not ids:
            return None
        claim = Claim(token=token, enrollment_ids=ids)
        if enqueue:
            transaction.on_commit(lambda: enqueue_advance(claim))
    return claim


# Woken enrollments of live journeys nobody holds, oldest wake-up first
# (PostgreSQL). Driven by the wake-ups: each is looked up by its enrollment's
# key (LATERAL with OFFSET 0), where the planner would rather scan every
# enrollment to join them; then those still free are locked and leased.
CLAIM_WOKEN_SQL = f"""
    WITH candidates AS (
        SELECT e.id FROM {Wakeup._meta.db_table} w
        CROSS JOIN LATERAL (
            SELECT e.id, e.journey_id FROM {Enrollment._meta.db_table} e
            WHERE e.id = w.enrollment_id AND e.state = %(waiting)s
              AND (e.locked_until IS NULL OR e.locked_until < %(now)s)
            OFFSET 0
        ) e
        JOIN {Journey._meta.db_table} j ON j.id = e.journey_id AND j.state = %(live)s
        ORDER BY w.woken_at
        LIMIT %(limit)s
    ), locked AS (
        SELECT e.id FROM {Enrollment._meta.db_table} e
        WHERE e.id = ANY(ARRAY(SELECT id FROM candidates)) AND e.state = %(waiting)s
          AND (e.locked_until IS NULL OR e.locked_until < %(now)s)
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {Enrollment._meta.db_table} e SET locked_until = %(until)s, lease_token = %(token)s
    FROM locked WHERE e.id = locked.id
    RETURNING e.id
"""


def _claim_woken(*, now, lease, limit):
    """(token, ids) for up to `limit` woken enrollments, now leased; None if none."""
    if connection.vendor != "postgresql":  # SQLite, the embedded default
        return rows_claim(
            queryset=Enrollment.objects.filter(
                state=Enrollment.State.WAITING,
                wakeup__isnull=False,
                journey__state=Journey.State.LIVE,
            ),
            order_by="wakeup__woken_at",
            now=now,
            lease=lease,
            limit=limit,
        )
    token = uuid.uuid4()
    params = {
        "waiting": Enrollment.State.WAITING,
        "live": Journey.State.LIVE,
        "now": now,
        "until": now + lease,
        "token": token,
        "limit": limit,
    }
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_WOKEN_SQL, params)
        ids = [row[0] for row in cursor.fetchall()]
    return (token, ids) if ids else None


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
    # Wake-ups of enrollments that left their wait another way (an exit
    # event, archiving, staff): nothing is left to wake.
    Wakeup.objects.exclude(enrollment__state=Enrollment.State.WAITING).delete()
    handed = 0
    for _ in range(max_batches):
        claim = enrollments_claim_due(now=now)
        if claim is None:
            break
        handed += len(claim.enrollment_ids)
    scheduler_pass_record(now=now)
    return handed


def scheduler_pass_record(*, now=None) -> None:
    """Note in Redis that a scheduler pass finished, for the admin's dashboard
    (journeys.selectors.scheduler_last_pass). Several schedulers share the key:
    the dashboard asks whether any is alive."""
    from journeys.selectors import SCHEDULER_PASS_KEY

    now = now or timezone.now()
    redis_client().set(SCHEDULER_PASS_KEY, now.timestamp())
