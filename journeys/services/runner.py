"""Advancing claimed enrollments: what every step type shares.

The runner loads the concrete steps, calls them, records a StepRun per step
taken and moves the enrollments on. It works set-based: a claimed batch is
grouped by the step each enrollment is at, each step runs once for its whole
group (`Step.execute_many`), and the group's moves are one UPDATE per kind of
move, guarded by the lease, with the step runs inserted in bulk. The rows
the lease still holds are locked when the batch first meets them, so until
the commit no other worker or scheduler can take them (a claim skips locked
rows): an enrollment's moves through several database steps are merged and
written once, with the commit that holds the steps' own writes, instead of
once per step. Groups share commits (a commit costs a disk flush). Before a
step that talks to the outside world (`performs_io`, e.g. a send)
everything so far is committed, and the step runs outside any transaction
so its own services can commit what they must before the I/O (a message is
recorded as `sending` before the mail server is called). A crash rolls back
only moves of steps without outside effects, which simply run again.
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


class BatchLeaseLost(LeaseLost):
    """Enrollments whose moves this batch made but has not yet written lost
    their lease: the batch's transaction cannot commit part of them, so it is
    rolled back whole and its enrollments are claimed again."""


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

    The moves of database steps are kept here (`defer`) and written just
    before the commit, one guarded UPDATE per set of changed fields, with the
    step runs in bulk, inside the transaction that holds the steps' own
    writes: an enrollment that goes through three steps is written once.
    """

    def __init__(self):
        self._block = None
        self._step_runs = []
        self._moves = {}  # enrollment id -> its changes since the last write, merged in order
        self._token = None

    def join(self):
        if self._block is None:
            self._block = transaction.atomic()
            self._block.__enter__()

    def add_step_run(self, step_run):
        self._step_runs.append(step_run)

    def defer(self, enrollment, changes, step_run, token):
        """Keep a move and its run, to be written with the commit. The caller
        holds the enrollment's row locked in this transaction."""
        self._token = token
        self._moves.setdefault(enrollment.pk, {}).update(changes)
        self._step_runs.append(step_run)

    def has_moves(self, enrollment_id) -> bool:
        return enrollment_id in self._moves

    def write_moves(self):
        """Write the deferred moves: one UPDATE per set of changed fields."""
        moves, self._moves = self._moves, {}
        written = _update_leased_by_shape(moves.items(), self._token)
        if len(written) != len(moves):
            # Their rows were locked by this transaction when the moves were
            # made; only this transaction can have changed them since.
            raise BatchLeaseLost(set(moves) - written)

    def flush(self):
        block, self._block = self._block, None
        if block is None:
            return
        try:
            self.write_moves()
            _step_runs_insert(self._step_runs)
        except BaseException:
            self._step_runs, self._moves = [], {}
            block.__exit__(*sys.exc_info())
            raise
        self._step_runs = []
        block.__exit__(None, None, None)

    def abort(self, exc_info):
        block, self._block = self._block, None
        self._step_runs, self._moves = [], {}
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
    group.add_step_run(_step_run(enrollment, **run_fields))
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

    Set-based: the enrollments are grouped by the step they are at, and each
    group of a step that only touches the database runs as one unit
    (`_run_database_group`: the step's `execute_many` for all of them, its
    moves kept to be written once per enrollment with the commit), so a batch
    costs a few statements per step it passes through, not a few per
    enrollment.
    A step that talks to the outside world waits until no enrollment of the
    batch has a database step left; then the commit is flushed and each such
    step runs once for all the enrollments at it (`execute_many`: one SMTP
    connection for a batch of emails), and those enrollments go on. Returns a
    count per final state.
    """
    taken = dict.fromkeys((e.pk for e in enrollments), 0)
    max_steps = settings.WAYMARK_ENGINE["MAX_STEPS_PER_RUN"]
    counts: dict = {}

    def done(state, how_many=1):
        counts[state] = counts.get(state, 0) + how_many

    ready = list(enrollments)
    at_io: dict = {}
    while ready or at_io:
        at_step: dict = {}
        worn = []
        for enrollment in ready:
            steps = steps_for(enrollment.journey_id)
            step = steps.by_id.get(enrollment.current_step_id)
            if taken[enrollment.pk] >= max_steps:
                worn.append(enrollment)
            elif step is not None and step.performs_io:
                at_io.setdefault(step.pk, (step, steps, []))[2].append(enrollment)
            else:
                # None: walked off the end of the journey (a group of its own per journey).
                key = (enrollment.journey_id, step.pk if step else None)
                at_step.setdefault(key, (step, steps, []))[2].append(enrollment)
        ready = []
        if worn:
            _yield_worker(worn, token, group)
            for enrollment in worn:
                done(enrollment.state)
        if at_step:
            for step, steps, members in at_step.values():
                if renew is not None:
                    renew()
                for enrollment, state in _run_database_group(
                    step, steps, members, token, group, taken
                ):
                    if state is None:
                        ready.append(enrollment)
                    else:
                        done(state)
            continue  # database steps first: the I/O steps wait for the whole batch
        group.flush()
        for step, steps, members in at_io.values():
            if renew is not None:
                renew()
            for enrollment, state in _run_io_step(step, steps, members, token, group, taken):
                if state is None:
                    ready.append(enrollment)
                else:
                    done(state)
        at_io = {}
    return counts


def _context(enrollment, token, steps, now):
    return StepContext(
        enrollment=enrollment, contact=enrollment.contact, steps=steps, now=now, token=token
    )


class _LeaseMismatch(Exception):
    """The lease of some of the group's enrollments changed while the step ran: roll back."""

    def __init__(self, held):
        super().__init__(held)
        self.held = held


def _run_database_group(step, steps, members, token, group, taken):
    """Run one database-only step for every enrollment at it; returns
    [(enrollment, final state or None to keep going)].

    The enrollments still leased to `token` are locked (the lock holds until
    the batch commits, so a claim by another scheduler passes them by), the
    step runs for those under a savepoint, and their moves are kept in the
    commit group, to be written with the commit that holds the step's writes.
    Should the lease of one of them have changed meanwhile (only this
    transaction can change a row it has locked), the savepoint rolls back and
    the step runs again without it, so nothing the step wrote for it
    survives; if moves were already kept for it, the whole batch rolls back.
    """
    group.join()
    pending = {e.pk: e for e in members}
    finished = []

    def lost(pks):
        if any(group.has_moves(pk) for pk in pks):
            raise BatchLeaseLost(set(pks))
        for pk in pks:
            finished.append((pending.pop(pk), "lease_lost"))

    while pending:
        try:
            with transaction.atomic():
                lost(set(pending) - _lock_leased(list(pending), token))
                if not pending:
                    break
                moves = _execute_group(step, steps, list(pending.values()), token, taken)
                held = _lock_leased(list(pending), token)
                if held != set(pending):
                    raise _LeaseMismatch(held)
        except _LeaseMismatch as mismatch:
            lost(set(pending) - mismatch.held)
            continue
        for enrollment, changes, run in moves:
            group.defer(enrollment, changes, run, token)
            for name, value in changes.items():
                setattr(enrollment, name, value)
        for enrollment in pending.values():
            finished.append(
                (enrollment, None if enrollment.state == State.ACTIVE else enrollment.state)
            )
        break
    return finished


def _execute_group(step, steps, enrollments, token, taken):
    """Run the step for the enrollments: [(enrollment, changes, StepRun)] to keep.

    `execute_many` runs for all of them under a savepoint. Should it raise,
    each enrollment runs alone under a savepoint of its own, and those that
    raise get their error recorded as before (retry, then failed) without
    failing the others.
    """
    now = timezone.now()
    bases = [{"step": step, "sequence": e.sequence, "started_at": now} for e in enrollments]
    if step is None:  # walked off the end of the journey
        return _planned(
            [
                (e, base, Continue(next_step=None))
                for e, base in zip(enrollments, bases, strict=True)
            ]
        )
    contexts = [_context(e, token, steps, now) for e in enrollments]
    try:
        with transaction.atomic():
            outcomes = step.execute_many(contexts)
    except Exception:
        logger.info("step %s: execute_many raised, running its enrollments one by one", step.pk)
    else:
        for enrollment in enrollments:
            taken[enrollment.pk] += 1
        return _planned(list(zip(enrollments, bases, outcomes, strict=True)))
    planned = []
    for enrollment, base, context in zip(enrollments, bases, contexts, strict=True):
        try:
            with transaction.atomic():
                outcome = step.execute(context)
        except Exception as exc:
            changes, run_fields = _error_move(enrollment, step, base, exc)
            planned.append((enrollment, changes, _step_run(enrollment, **run_fields)))
        else:
            taken[enrollment.pk] += 1
            planned += _planned([(enrollment, base, outcome)])
    return planned


def _lock_leased(enrollment_ids, token) -> set:
    """Lock the enrollments `token` still holds; their ids."""
    if connection.vendor != "postgresql":
        # SQLite (the embedded default) has one writer at a time: the write
        # this transaction is about to make holds every row until it commits.
        held = Enrollment.objects.filter(pk__in=list(enrollment_ids), lease_token=token)
        return set(held.values_list("pk", flat=True))
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {quote(Enrollment._meta.db_table)} "
            "WHERE id = ANY(%s) AND lease_token = %s ORDER BY id FOR UPDATE",
            [enrollment_ids, token],
        )
        return {row[0] for row in cursor.fetchall()}


def _planned(moves):
    """For each (enrollment, base, outcome): (enrollment, its changes, its StepRun)."""
    at = timezone.now()
    planned = []
    for enrollment, base, outcome in moves:
        run_outcome, changes, _ = _next_state(outcome, enrollment, at, base["step"])
        run = _step_run(
            enrollment,
            **base,
            finished_at=at,
            outcome=run_outcome,
            branch=getattr(outcome, "branch", ""),
            message=getattr(outcome, "message", None),
            detail=outcome.detail[:500],
        )
        planned.append((enrollment, changes, run))
    return planned


def _write_moves(moves, token):
    """Apply each (enrollment, base, outcome)'s move now if `token` still
    holds it: one UPDATE … FROM unnest(…) per kind of move, whatever the
    number of enrollments. Returns the ids moved, and for each move made
    (enrollment, its changes, its StepRun) for the caller to apply once the
    moves commit."""
    planned = _planned(moves)
    written = _update_leased_by_shape([(e.pk, changes) for e, changes, _ in planned], token)
    return written, [row for row in planned if row[0].pk in written]


def _update_leased_by_shape(rows, token) -> set:
    """Apply each (id, changes) row `token` still holds: one UPDATE per set
    of changed fields. The ids it changed."""
    shapes: dict = {}
    for pk, changes in rows:
        shapes.setdefault(tuple(sorted(changes)), []).append((pk, changes))
    written = set()
    for names, shaped in shapes.items():
        written |= _update_leased_many(names, shaped, token)
    return written


def _update_leased_many(names, rows, token) -> set:
    """UPDATE the fields `names` of each (id, changes) row `token` still holds,
    in one statement; the ids it changed.

    Written as SQL over unnest()ed arrays, one parameter per column: Django's
    bulk_update has no lease guard and builds a CASE per field and row, and a
    VALUES list of thousands of placeholders costs more to build and parse
    than the update itself.
    """
    if not rows:
        return set()
    if connection.vendor != "postgresql":  # SQLite: the same guarded UPDATE, row by row
        return {pk for pk, changes in rows if _update_leased(pk, token, changes)}
    quote = connection.ops.quote_name
    fields = [Enrollment._meta.get_field(name) for name in names]
    columns = [[pk for pk, _ in rows]]
    for column in fields:
        values = [changes[column.name] for _, changes in rows]
        if column.is_relation:
            values = [v.pk if v is not None and not isinstance(v, int) else v for v in values]
        columns.append(values)
    source, params = _unnest(["bigint", *(f.db_type(connection) for f in fields)], columns)
    names_sql = ", ".join(quote(f.column) for f in fields)
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Enrollment._meta.db_table)} AS t SET {assignments} "
            f"FROM {source} AS v(id, {names_sql}) "
            "WHERE t.id = v.id AND t.lease_token = %s RETURNING t.id",
            [*params, token],
        )
        return {row[0] for row in cursor.fetchall()}


def _unnest(types, columns):
    """`unnest(%s::type[], …)` over one array per column, and its parameters."""
    sql = ", ".join(f"%s::{db_type}[]" for db_type in types)
    return f"unnest({sql})", list(columns)


_STEP_RUN_FIELDS = (
    "enrollment", "step", "sequence", "outcome", "branch", "message", "detail", "error",
    "started_at", "finished_at",
)  # fmt: skip
_STEP_RUN_COLUMNS = tuple(StepRun._meta.get_field(name).attname for name in _STEP_RUN_FIELDS)


def _step_run(
    enrollment, *, step, sequence, started_at, finished_at, outcome, branch="", message=None,
    detail="", error="",
):  # fmt: skip
    """A step run to insert, as a row of values in _STEP_RUN_FIELDS' order: a
    batch makes thousands, and a model instance costs more to build than its
    share of the INSERT."""
    step_id = step if step is None or isinstance(step, int) else step.pk
    message_id = message if message is None or isinstance(message, int) else message.pk
    return (
        enrollment.pk, step_id, sequence, outcome, branch, message_id, detail, error,
        started_at, finished_at,
    )  # fmt: skip


def _step_runs_insert(step_runs):
    """Insert the step runs (rows made by _step_run) with one INSERT … SELECT
    FROM unnest(…): cheaper to build than bulk_create's placeholder per value
    for a batch's thousands."""
    if not step_runs:
        return
    if connection.vendor != "postgresql":
        StepRun.objects.bulk_create(
            StepRun(**dict(zip(_STEP_RUN_COLUMNS, row, strict=True))) for row in step_runs
        )
        return
    quote = connection.ops.quote_name
    fields = [StepRun._meta.get_field(name) for name in _STEP_RUN_FIELDS]
    source, params = _unnest(
        [field.db_type(connection) for field in fields],
        [list(c) for c in zip(*step_runs, strict=True)],
    )
    names_sql = ", ".join(quote(field.column) for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(StepRun._meta.db_table)} ({names_sql}) SELECT * FROM {source}",
            params,
        )


def _run_io_step(step, steps, enrollments, token, group, taken):
    """Run one I/O step for every enrollment waiting at it, outside any transaction.

    Yields (enrollment, final state or None to keep going).
    """
    now = timezone.now()
    runs = [
        (e, {"step": step, "sequence": e.sequence, "started_at": now},
         _context(e, token, steps, now))
        for e in enrollments
    ]  # fmt: skip
    contexts = [context for _, _, context in runs]
    try:
        outcomes = step.execute_many(contexts)
    except Exception as exc:
        for enrollment, base, _ in runs:
            try:
                _record_step_error(enrollment, token, step, base, exc, group)
                yield enrollment, enrollment.state
            except LeaseLost:
                yield enrollment, "lease_lost"
        return
    moves = []
    for (enrollment, base, _), outcome in zip(runs, outcomes, strict=True):
        if isinstance(outcome, Abandoned):
            yield enrollment, "lease_lost"
            continue
        taken[enrollment.pk] += 1
        moves.append((enrollment, base, outcome))
    group.join()
    written, landed = _write_moves(moves, token)
    for enrollment, changes, run in landed:
        for name, value in changes.items():
            setattr(enrollment, name, value)
        group.add_step_run(run)
    for enrollment, _, _ in moves:
        if enrollment.pk not in written:
            yield enrollment, "lease_lost"
        elif enrollment.state == State.ACTIVE:
            yield enrollment, None
        else:
            yield enrollment, enrollment.state


def _yield_worker(enrollments, token, group):
    # A journey that loops without waiting: yield the worker, continue on the next pass.
    group.join()
    group.write_moves()
    Enrollment.objects.filter(pk__in=[e.pk for e in enrollments], lease_token=token).update(
        **_released(next_run_at=timezone.now())
    )


# Every move off a step ends any wait for an event that the step began.
NOT_WAITING = {
    "wait_event_name": "",
    "wait_key": "",
    "wait_value": "",
    "wait_since": None,
    "wait_timeout_at": None,
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
                **{
                    **moved,
                    "state": State.WAITING,
                    "current_step": step,
                    "next_run_at": outcome.timeout_at,
                    "wait_event_name": outcome.event_name,
                    "wait_key": outcome.key,
                    "wait_value": outcome.value,
                    "wait_since": outcome.since,
                    "wait_timeout_at": outcome.timeout_at,
                }
            )
            return Outcome.WAITING, changes, False
        case RetryAt():
            # Same step, same sequence: a retried send reuses its idempotency key.
            return Outcome.RETRY, _released(state=State.WAITING, next_run_at=outcome.at), False
        case Complete():
            return Outcome.COMPLETED, {**finished, "state": State.COMPLETED}, False
        case Exit():
            changes = {
                **finished,
                "state": State.EXITED,
                "exit_reason": outcome.reason,
                "exit_kind": outcome.kind,
            }
            return Outcome.EXITED, changes, False
        case Holdout():
            changes = {
                **finished,
                "state": State.EXITED,
                "exit_reason": HOLDOUT_EXIT_REASON,
                "exit_kind": Enrollment.ExitKind.HOLDOUT,
                "holdout": True,
            }
            return Outcome.EXITED, changes, False
    raise TypeError(f"{type(step).__name__}.execute() returned {outcome!r}")


def _error_move(enrollment, step, base, exc):
    """What a step that raised means: (enrollment changes, StepRun fields).
    Tried again later with a growing pause, then failed."""
    now = timezone.now()
    attempts = enrollment.attempts + 1
    error = "".join(traceback.format_exception_only(exc)).strip()
    logger.error(
        "enrollment %s: step %s raised",
        enrollment.pk,
        step.pk,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    run_fields = {
        **base,
        "finished_at": now,
        "error": "".join(traceback.format_exception(exc))[-4000:],
    }
    if attempts >= STEP_MAX_ATTEMPTS:
        changes = _released(
            state=State.FAILED,
            attempts=attempts,
            finished_at=now,
            next_run_at=None,
            last_error=error,
        )
        return changes, {**run_fields, "outcome": Outcome.FAILED}
    retry_at = now + STEP_RETRY_BASE * (4 ** (attempts - 1))
    changes = _released(
        state=State.WAITING, attempts=attempts, next_run_at=retry_at, last_error=error
    )
    return changes, {**run_fields, "outcome": Outcome.RETRY}


def _record_step_error(enrollment, token, step, base, exc, group):
    changes, run_fields = _error_move(enrollment, step, base, exc)
    _transition(enrollment, token, run_fields=run_fields, enrollment_fields=changes, group=group)


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

    try:
        with CommitGroup() as group:
            return _advance(enrollments, token=token, steps_for=steps_for, group=group, renew=renew)
    except BatchLeaseLost as exc:
        # Rolled back: what the batch had not committed runs again, for those
        # still leased to it at once, for the others when their holder runs them.
        logger.warning("batch %s rolled back: enrollments %s lost their lease", token, exc)
        released = Enrollment.objects.filter(pk__in=ids, lease_token=token).update(
            locked_until=None, lease_token=None
        )
        return {"lease_lost": len(ids) - released, "released": released}


def _renew_leases(enrollment_ids, token, lease, group):
    now = timezone.now()
    group.flush()  # commit what is done, so the renewal is not held back by it
    Enrollment.objects.filter(pk__in=enrollment_ids, lease_token=token).update(
        locked_until=now + lease
    )
    return now + lease / 2
