"""Advancing claimed enrollments: what every step type shares.

The runner loads the concrete step, calls its execute(), records a StepRun
and moves the enrollment on. Each transition is atomic (a savepoint guarded
by the enrollment's lease) and a batch's transitions share commits: a commit
costs a disk flush, and per-transition commits would make the flush, not the
work, the limit. Before a step that talks to the outside world
(`performs_io`, e.g. a send) everything so far is committed, and the step
runs outside any transaction so its own services can commit what they must
before the I/O (a message is recorded as `sending` before the mail server
is called). A crash rolls back only transitions of steps without outside
effects, which simply run again.
"""

import logging
import sys
import traceback
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from journeys.models import Enrollment, StepRun
from journeys.models.steps import NEXT
from journeys.outcomes import (
    Abandoned,
    Complete,
    Continue,
    Exit,
    Holdout,
    RetryAt,
    WaitForEvent,
    WaitUntil,
)
from journeys.services.graph import JourneySteps

logger = logging.getLogger(__name__)

State = Enrollment.State
Outcome = StepRun.Outcome

# A step that raises is tried again after 1, 4, 16 minutes, then the
# enrollment is marked failed (and visible in the admin) instead of looping.
STEP_MAX_ATTEMPTS = 4
STEP_RETRY_BASE = timedelta(minutes=1)
HOLDOUT_EXIT_REASON = "holdout: in the control group"


class LeaseLost(Exception):
    """Another worker now holds this enrollment: stop touching it."""


@dataclass
class StepContext:
    """What a step's execute() may use."""

    enrollment: Enrollment
    contact: object
    steps: JourneySteps
    now: object
    token: object = None

    @property
    def idempotency_key(self):
        e = self.enrollment
        return f"journey:{e.journey_id}:enrollment:{e.pk}:step:{e.current_step_id}:seq:{e.sequence}"

    @property
    def send_hold(self):
        """What a send step hands messaging, so that at the instant of sending
        journeys can tell whether this passage still stands
        (journeys.services.sending)."""
        e = self.enrollment
        return (self.token, e.current_step_id, e.sequence)

    def step(self, step_id):
        return self.steps.by_id.get(step_id) if step_id else None

    def following(self, step, label=NEXT):
        """The step `label` leads to from `step` ("next" unless it branches)."""
        return self.steps.following(step, label)

    def following_or_next(self, step, label):
        """The step `label`'s own connection leads to, else where "next" does."""
        if (step.pk, label) in self.steps.connections:
            return self.steps.following(step, label)
        return self.steps.following(step)

    def template_context(self):
        return {"event": dict(self.enrollment.trigger_data or {})}


class CommitGroup:
    """An open transaction that transitions join until flush() commits it.

    Step runs are written in bulk just before the commit, inside the same
    transaction as the enrollment changes they record.
    """

    def __init__(self):
        self._block = None
        self._step_runs = []

    def join(self):
        if self._block is None:
            self._block = transaction.atomic()
            self._block.__enter__()

    def add_step_run(self, step_run):
        self._step_runs.append(step_run)

    def flush(self):
        block, self._block = self._block, None
        if block is None:
            return
        try:
            StepRun.objects.bulk_create(self._step_runs)
        except BaseException:
            self._step_runs = []
            block.__exit__(*sys.exc_info())
            raise
        self._step_runs = []
        block.__exit__(None, None, None)

    def abort(self, exc_info):
        block, self._block = self._block, None
        self._step_runs = []
        if block is not None:
            block.__exit__(*exc_info)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            self.flush()
        else:
            self.abort(exc_info)
        return False


def _transition(enrollment, token, *, run_fields, enrollment_fields, group):
    """Record one StepRun and apply one state change, atomically, if we still hold the lease."""
    group.join()
    # No savepoint needed: when the lease is gone the UPDATE changed nothing
    # and nothing else has been written yet.
    if not _update_leased(enrollment.pk, token, enrollment_fields):
        raise LeaseLost(enrollment.pk)
    group.add_step_run(StepRun(enrollment=enrollment, **run_fields))
    for name, value in enrollment_fields.items():
        setattr(enrollment, name, value)


def _update_leased(enrollment_id, token, fields) -> bool:
    """UPDATE the enrollment if `token` still holds it; whether it did.

    Written as SQL: every step taken runs it, and building the queryset costs
    more than running it.
    """
    quote = connection.ops.quote_name
    assignments, params = [], []
    for name, value in fields.items():
        field = Enrollment._meta.get_field(name)
        if field.is_relation and value is not None and not isinstance(value, int):
            value = value.pk
        assignments.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    token_field = Enrollment._meta.get_field("lease_token")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Enrollment._meta.db_table)} SET {', '.join(assignments)} "
            "WHERE id = %s AND lease_token = %s",
            [*params, enrollment_id, token_field.get_db_prep_value(token, connection)],
        )
        return cursor.rowcount == 1


def _released(**fields):
    return {"locked_until": None, "lease_token": None, **fields}


def enrollment_advance(
    *, enrollment: Enrollment, token, steps: JourneySteps, group: CommitGroup | None = None
) -> str:
    """Run steps for one claimed enrollment until it waits, ends or fails.

    Returns the enrollment's final state ("lease_lost" when another worker
    holds it now). Safe to call twice with the same token: a finished
    enrollment has no lease, and a retried send finds its Message row.
    Without a `group`, every transition commits before return.
    """
    if group is None:
        with CommitGroup() as own_group:
            return enrollment_advance(
                enrollment=enrollment, token=token, steps=steps, group=own_group
            )
    counts = _advance([enrollment], token=token, steps_for=lambda journey_id: steps, group=group)
    (state,) = counts
    return state


def _advance(enrollments, *, token, steps_for, group, renew=None) -> dict:
    """Advance `enrollments` (all claimed with `token`) until each waits, ends or fails.

    Steps that only touch the database run enrollment by enrollment, their
    transitions sharing `group`'s commit. A step that talks to the outside
    world waits until every enrollment of the batch has reached its own wait,
    end or such a step; then the commit is flushed and each such step runs
    once for all the enrollments at it (`execute_many`: one SMTP connection
    for a batch of emails), and those enrollments go on. Returns a count per
    final state.
    """
    taken = dict.fromkeys((e.pk for e in enrollments), 0)
    counts: dict = {}

    def done(state):
        counts[state] = counts.get(state, 0) + 1

    ready = list(enrollments)
    while ready:
        at_io: dict = {}
        for enrollment in ready:
            if renew is not None:
                renew()
            try:
                state = _run_database_steps(
                    enrollment, token, steps_for(enrollment.journey_id), group, taken, at_io
                )
            except LeaseLost:
                state = "lease_lost"
            if state is not None:
                done(state)
        ready = []
        if at_io:
            group.flush()
        for step, runs in at_io.values():
            if renew is not None:
                renew()
            for enrollment, state in _run_io_step(step, runs, token, group, taken):
                if state is None:
                    ready.append(enrollment)
                else:
                    done(state)
    return counts


def _context(enrollment, token, steps, now):
    return StepContext(
        enrollment=enrollment, contact=enrollment.contact, steps=steps, now=now, token=token
    )


def _run_database_steps(enrollment, token, steps, group, taken, at_io):
    """Run the enrollment's steps while they only touch the database.

    Returns its final state, or None when it reached a step that performs
    I/O (then queued in `at_io`, keyed by step).
    """
    max_steps = settings.WAYMARK_ENGINE["MAX_STEPS_PER_RUN"]
    while taken[enrollment.pk] < max_steps:
        now = timezone.now()
        step = steps.by_id.get(enrollment.current_step_id)
        base = {"step": step, "sequence": enrollment.sequence, "started_at": now}
        if step is None:  # walked off the end of the journey
            outcome = Continue(next_step=None)
        elif step.performs_io:
            at_io.setdefault(step.pk, (step, []))[1].append(
                (enrollment, base, _context(enrollment, token, steps, now))
            )
            return None
        else:
            group.join()
            try:
                # The step's writes and its transition stand or fall together:
                # a failing step's writes roll back alone, and so do those of
                # a step whose enrollment another worker took meanwhile.
                with transaction.atomic():
                    outcome = step.execute(_context(enrollment, token, steps, now))
                    taken[enrollment.pk] += 1
                    if not _apply(outcome, enrollment, token, step, base, group):
                        return enrollment.state
                continue
            except LeaseLost:
                raise
            except Exception as exc:
                _record_step_error(enrollment, token, step, base, exc, group)
                return enrollment.state
        taken[enrollment.pk] += 1
        if not _apply(outcome, enrollment, token, step, base, group):
            return enrollment.state
    _yield_worker(enrollment, token, group)
    return enrollment.state


def _run_io_step(step, runs, token, group, taken):
    """Run one I/O step for every enrollment waiting at it, outside any transaction.

    Yields (enrollment, final state or None to keep going).
    """
    contexts = [context for _, _, context in runs]
    try:
        if hasattr(step, "execute_many"):
            outcomes = step.execute_many(contexts)
        else:
            outcomes = [step.execute(context) for context in contexts]
    except Exception as exc:
        for enrollment, base, _ in runs:
            try:
                _record_step_error(enrollment, token, step, base, exc, group)
                yield enrollment, enrollment.state
            except LeaseLost:
                yield enrollment, "lease_lost"
        return
    max_steps = settings.WAYMARK_ENGINE["MAX_STEPS_PER_RUN"]
    for (enrollment, base, _), outcome in zip(runs, outcomes, strict=True):
        if isinstance(outcome, Abandoned):
            yield enrollment, "lease_lost"
            continue
        taken[enrollment.pk] += 1
        try:
            keep_going = _apply(outcome, enrollment, token, step, base, group)
        except LeaseLost:
            yield enrollment, "lease_lost"
            continue
        if not keep_going:
            yield enrollment, enrollment.state
        elif taken[enrollment.pk] >= max_steps:
            _yield_worker(enrollment, token, group)
            yield enrollment, enrollment.state
        else:
            yield enrollment, None


def _apply(outcome, enrollment, token, step, base, group) -> bool:
    """Record the step run and move the enrollment on; True if it runs on now."""
    done = timezone.now()
    run_outcome, changes, keep_going = _next_state(outcome, enrollment, done, step)
    _transition(
        enrollment,
        token,
        group=group,
        run_fields={
            **base,
            "finished_at": done,
            "outcome": run_outcome,
            "branch": getattr(outcome, "branch", ""),
            "message": getattr(outcome, "message", None),
            "detail": outcome.detail[:500],
        },
        enrollment_fields=changes,
    )
    return keep_going


def _yield_worker(enrollment, token, group):
    # A journey that loops without waiting: yield the worker, continue on the next pass.
    group.join()
    Enrollment.objects.filter(pk=enrollment.pk, lease_token=token).update(
        **_released(next_run_at=timezone.now())
    )


# Every move off a step ends any wait for an event that the step began.
NOT_WAITING = {
    "wait_event_name": "",
    "wait_key": "",
    "wait_value": "",
    "wait_since": None,
    "wait_timeout_at": None,
    "wait_event_id": None,
}


def _next_state(outcome, enrollment, at, step):
    """What an outcome means: (StepRun outcome, enrollment changes, run on now?)."""
    moved = {"sequence": enrollment.sequence + 1, "attempts": 0}
    if enrollment.wait_event_name:
        moved.update(NOT_WAITING)
    finished = _released(finished_at=at, next_run_at=None, current_step=None, **moved)
    match outcome:
        case Continue(next_step=None):
            return Outcome.COMPLETED, {**finished, "state": State.COMPLETED}, False
        case Continue():
            changes = {
                **moved,
                "state": State.ACTIVE,
                "current_step": outcome.next_step,
                "next_run_at": at,
            }
            return Outcome.CONTINUED, changes, True
        case WaitUntil():
            changes = _released(
                **moved, state=State.WAITING, current_step=outcome.next_step, next_run_at=outcome.at
            )
            return Outcome.WAITING, changes, False
        case WaitForEvent():
            changes = _released(
                **moved,
                state=State.WAITING,
                current_step=step,
                next_run_at=outcome.timeout_at,
                wait_event_name=outcome.event_name,
                wait_key=outcome.key,
                wait_value=outcome.value,
                wait_since=outcome.since,
                wait_timeout_at=outcome.timeout_at,
                wait_event_id=None,
            )
            return Outcome.WAITING, changes, False
        case RetryAt():
            # Same step, same sequence: a retried send reuses its idempotency key.
            return Outcome.RETRY, _released(state=State.WAITING, next_run_at=outcome.at), False
        case Complete():
            return Outcome.COMPLETED, {**finished, "state": State.COMPLETED}, False
        case Exit():
            changes = {**finished, "state": State.EXITED, "exit_reason": outcome.reason}
            return Outcome.EXITED, changes, False
        case Holdout():
            changes = {
                **finished,
                "state": State.EXITED,
                "exit_reason": HOLDOUT_EXIT_REASON,
                "holdout": True,
            }
            return Outcome.EXITED, changes, False
    raise TypeError(f"{type(step).__name__}.execute() returned {outcome!r}")


def _record_step_error(enrollment, token, step, base, exc, group):
    now = timezone.now()
    attempts = enrollment.attempts + 1
    error = "".join(traceback.format_exception_only(exc)).strip()
    logger.exception("enrollment %s: step %s raised", enrollment.pk, step.pk)
    run_fields = {**base, "finished_at": now, "error": traceback.format_exc()[-4000:]}
    if attempts >= STEP_MAX_ATTEMPTS:
        fields = _released(
            state=State.FAILED,
            attempts=attempts,
            finished_at=now,
            next_run_at=None,
            last_error=error,
        )
        _transition(enrollment, token, run_fields={**run_fields, "outcome": Outcome.FAILED},
                    enrollment_fields=fields, group=group)  # fmt: skip
        return
    retry_at = now + STEP_RETRY_BASE * (4 ** (attempts - 1))
    fields = _released(
        state=State.WAITING, attempts=attempts, next_run_at=retry_at, last_error=error
    )
    _transition(enrollment, token, run_fields={**run_fields, "outcome": Outcome.RETRY},
                enrollment_fields=fields, group=group)  # fmt: skip


def enrollments_advance(*, enrollment_ids, token) -> dict:
    """Advance every enrollment of a batch that this token still holds.

    Returns a count per final state. Loads the batch and each journey's steps
    once, so a batch costs a fixed number of queries plus those of its steps.
    """
    token = uuid.UUID(str(token))
    now = timezone.now()
    enrollments = list(
        Enrollment.objects.select_related("contact")
        .filter(pk__in=enrollment_ids, lease_token=token, locked_until__gt=now)
        .order_by("pk")
    )
    steps_by_journey = {}

    def steps_for(journey_id):
        if journey_id not in steps_by_journey:
            steps_by_journey[journey_id] = JourneySteps.load(journey_id)
        return steps_by_journey[journey_id]

    lease = settings.WAYMARK_ENGINE["LEASE"]
    renew_at = now + lease / 2
    ids = [e.pk for e in enrollments]

    def renew():
        # A slow batch (a sluggish mail server) keeps its leases, so no
        # scheduler hands the rest of it to a second worker meanwhile.
        nonlocal renew_at
        if timezone.now() >= renew_at:
            renew_at = _renew_leases(ids, token, lease, group)

    with CommitGroup() as group:
        return _advance(enrollments, token=token, steps_for=steps_for, group=group, renew=renew)


def _renew_leases(enrollment_ids, token, lease, group):
    now = timezone.now()
    group.flush()  # commit what is done, so the renewal is not held back by it
    Enrollment.objects.filter(pk__in=enrollment_ids, lease_token=token).update(
        locked_until=now + lease
    )
    return now + lease / 2
