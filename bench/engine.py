"""How fast the journey engine moves enrollments, with real worker processes.

`make bench BENCH=engine ARGS="--scenario steps --enrollments 100000 --workers 2"`

Scenarios (every size is an argument; setup is set-based, with generate_series):

- steps: N enrollments due at once go through three steps that send nothing
  (add to a score, an attribute condition, a delay that leaves them waiting).
  The scheduler's claims are made by this process, a few batches ahead of the
  workers, as the scheduler process would; W rq SimpleWorker processes run
  the jobs. Figure: steps per second, from the first claim to the last move.
- due: N enrollments wait at a delay; D of them fall due in the same second.
  The real scheduler process (`manage.py run_scheduler`) and W workers run.
  Figure: lateness (the step after the delay finished, minus the due time),
  p50 / p99 / max.
- claim: N enrollments over 100 journeys (1 % due, 19 % waiting, the rest
  finished); the scheduler's claim query is run under EXPLAIN ANALYZE.
- list-entry: a list of N members enters a journey (journeys_enroll_list).
  Figure: the time it took, and members per second.
"""

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import django_rq
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rq import Worker

from contacts.models import Contact, ContactList, ListMembership
from journeys.models import (
    ConditionStep,
    DelayStep,
    Enrollment,
    Journey,
    StepRun,
    UpdateContactStep,
)
from journeys.services.entry import LIST_ENTRY_CHUNK, journeys_enroll_list
from journeys.services.scheduling import enrollments_claim_due, scheduler_tick


def _load():
    return Path("/proc/loadavg").read_text().split()[:3]


def _sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _insert_contacts(count):
    """`count` contacts, half on the pro plan, each with a score."""
    _sql(
        f"""
        INSERT INTO {Contact._meta.db_table}
            (email, phone, timezone, locale, attributes, blocklisted, created_at, updated_at)
        SELECT 'bench' || i || '@example.com', '', '', '',
               jsonb_build_object('plan', CASE WHEN i %% 2 = 0 THEN 'pro' ELSE 'free' END,
                                  'score', i %% 100),
               false, now(), now()
        FROM generate_series(1, %s) AS i
        """,
        [count],
    )


def _insert_enrollments(journey, step, *, state, next_run_at, entered_at):
    """Every contact enters `journey` at `step`."""
    _sql(
        f"""
        INSERT INTO {Enrollment._meta.db_table}
            (journey_id, contact_id, state, current_step_id, sequence, attempts, next_run_at,
             wait_event_name, trigger_data, entered_at, exit_reason, last_error)
        SELECT %s, id, %s, %s, 0, 0, %s, '', '{{}}'::jsonb, %s, '', ''
        FROM {Contact._meta.db_table}
        """,
        [journey.pk, state, step.pk, next_run_at, entered_at],
    )


def _three_step_journey(name):
    journey = Journey.objects.create(name=name, state=Journey.State.LIVE)
    score = UpdateContactStep.objects.create(
        journey=journey, key="score", position=1, action="increment", attribute="score",
        value="5",
    )  # fmt: skip
    ConditionStep.objects.create(
        journey=journey, key="is-pro", position=2, kind="attribute", attribute="plan",
        operator="eq", value='"pro"',
    )  # fmt: skip
    DelayStep.objects.create(journey=journey, key="wait", position=3, amount=1, unit="days")
    return journey, score


class Workers:
    """W rq SimpleWorker processes on the bench database (and, if asked, the
    real scheduler process)."""

    def __init__(self, count, *, scheduler=False):
        database = settings.DATABASES["default"]
        self.env = {
            **os.environ,
            "DATABASE_URL": (
                f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
                f"{database['NAME']}"
            ),
            "LOG_LEVEL": "WARNING",
        }
        self.count, self.scheduler = count, scheduler
        self.queue = django_rq.get_queue("default")
        self.processes = []

    def __enter__(self):
        self.queue.connection.flushdb()
        root = Path(settings.BASE_DIR)
        command = [sys.executable, "manage.py", "rqworker", "default", "--worker-class",
                   "rq.worker.SimpleWorker", "--verbosity", "0"]  # fmt: skip
        self.processes = [
            subprocess.Popen(command, cwd=root, env=self.env) for _ in range(self.count)
        ]
        if self.scheduler:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "run_scheduler"],
                    cwd=root,
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                )
            )
        # The clock starts once every worker is listening (Django's start-up is not the engine's).
        deadline = time.monotonic() + 60
        while Worker.count(queue=self.queue) < self.count and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
        return self

    def __exit__(self, *exc_info):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait()


def steps(options):
    count, workers = options.enrollments, options.workers
    journey, first = _three_step_journey("Bench steps")
    started = time.perf_counter()
    _insert_contacts(count)
    now = timezone.now()
    _insert_enrollments(journey, first, state="active", next_run_at=now, entered_at=now)
    _sql("ANALYZE")
    print(f"   {count:,} enrollments set up in {time.perf_counter() - started:.1f}s")
    active = Enrollment.objects.filter(journey=journey, state=Enrollment.State.ACTIVE)
    load_before = _load()
    with Workers(workers) as pool:
        started = time.perf_counter()
        while active.exists():
            # Keep a few batches queued per worker, as the scheduler process would.
            if pool.queue.count < workers * 2:
                scheduler_tick(max_batches=workers * 2)
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    taken = StepRun.objects.filter(enrollment__journey=journey).count()
    waiting = Enrollment.objects.filter(journey=journey, state=Enrollment.State.WAITING).count()
    print(
        f"   {workers} worker(s): {taken:,} steps for {waiting:,} enrollments in {elapsed:.1f}s: "
        f"{taken / elapsed:,.0f} steps/s ({waiting / elapsed:,.0f} enrollments/s)"
    )
    print(f"   load average before {' '.join(load_before)}, after {' '.join(_load())}")


def due(options):
    count, falling_due, workers = options.enrollments, options.due, options.workers
    journey, _ = _three_step_journey("Bench due")
    condition = journey.steps.get(key="is-pro")
    started = time.perf_counter()
    _insert_contacts(count)
    now = timezone.now()
    _insert_enrollments(
        journey, condition, state="waiting", next_run_at=now + timedelta(days=1), entered_at=now
    )
    _sql("ANALYZE")
    print(f"   {count:,} enrollments waiting, set up in {time.perf_counter() - started:.1f}s")
    load_before = _load()
    with Workers(workers, scheduler=True):
        # D of them, spread over the table, fall due in the same second.
        due_at = timezone.now() + timedelta(seconds=5)
        step = max(count // falling_due, 1)
        _sql(
            f"UPDATE {Enrollment._meta.db_table} SET next_run_at = %s "
            f"WHERE journey_id = %s AND id IN (SELECT id FROM {Enrollment._meta.db_table} "
            f"WHERE journey_id = %s AND id %% %s = 0 LIMIT %s)",
            [due_at, journey.pk, journey.pk, step, falling_due],
        )
        runs = StepRun.objects.filter(step=condition)
        deadline = time.monotonic() + 600
        while runs.count() < falling_due and time.monotonic() < deadline:
            time.sleep(0.5)
    finished = sorted(runs.values_list("finished_at", flat=True))
    late = sorted((at - due_at).total_seconds() for at in finished)
    if len(late) < falling_due:
        print(f"   only {len(late):,} of {falling_due:,} advanced within 10 minutes")
    if late:

        def pct(p):
            return late[min(len(late) - 1, int(len(late) * p))]

        print(
            f"   {workers} worker(s), {len(late):,} of {count:,} due at once: lateness "
            f"p50 {pct(0.5):.1f}s, p99 {pct(0.99):.1f}s, max {late[-1]:.1f}s"
        )
    print(f"   load average before {' '.join(load_before)}, after {' '.join(_load())}")


def claim(options):
    count, journeys = options.enrollments, 100
    per_journey = count // journeys
    started = time.perf_counter()
    _insert_contacts(per_journey)
    steps_ = []
    for j in range(journeys):
        journey, first = _three_step_journey(f"Bench claim {j}")
        if j % 10 == 9:
            Journey.objects.filter(pk=journey.pk).update(state=Journey.State.PAUSED)
        steps_.append((journey.pk, first.pk))
    now = timezone.now()
    # 1 % due now, 19 % waiting for later, 80 % finished.
    for journey_id, step_id in steps_:
        _sql(
            f"""
            INSERT INTO {Enrollment._meta.db_table}
                (journey_id, contact_id, state, current_step_id, sequence, attempts,
                 next_run_at, wait_event_name, trigger_data, entered_at, exit_reason, last_error)
            SELECT %s, id,
                   CASE WHEN id %% 100 = 0 THEN 'waiting' WHEN id %% 5 = 1 THEN 'waiting'
                        ELSE 'completed' END,
                   CASE WHEN id %% 100 = 0 OR id %% 5 = 1 THEN %s END, 3, 0,
                   CASE WHEN id %% 100 = 0 THEN %s - (id %% 3600) * interval '1 second'
                        WHEN id %% 5 = 1 THEN %s + (id %% 86400) * interval '1 second' END,
                   '', '{{}}'::jsonb, %s, '', ''
            FROM {Contact._meta.db_table}
            """,
            [journey_id, step_id, now, now, now],
        )
    _sql("ANALYZE")
    total = Enrollment.objects.count()
    print(f"   {total:,} enrollments set up in {time.perf_counter() - started:.1f}s")
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            enrollments_claim_due(enqueue=False)
        select = next(q["sql"] for q in queries if "SKIP LOCKED" in q["sql"])
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {select}")
            plan = [row[0] for row in cursor.fetchall()]
        transaction.set_rollback(True)
    print(f"   claim query: {select}")
    for line in plan:
        print(f"   | {line}")


def list_entry(options):
    count = options.members
    started = time.perf_counter()
    _insert_contacts(count)
    members = ContactList.objects.create(name="Bench members")
    _sql(
        f"INSERT INTO {ListMembership._meta.db_table} (contact_list_id, contact_id, joined_at, "
        f"source) SELECT %s, id, now(), 'import' FROM {Contact._meta.db_table}",
        [members.pk],
    )
    journey, _ = _three_step_journey("Bench list entry")
    _sql("ANALYZE")
    print(f"   a list of {count:,} members set up in {time.perf_counter() - started:.1f}s")
    load_before = _load()
    started = time.perf_counter()
    entered = journeys_enroll_list(
        journey_id=journey.pk, list_id=members.pk, chunk_size=options.chunk
    )
    elapsed = time.perf_counter() - started
    print(
        f"   {entered:,} members entered the journey in {elapsed:.1f}s "
        f"({entered / elapsed:,.0f}/s, chunks of {options.chunk or LIST_ENTRY_CHUNK:,})"
    )
    print(f"   load average before {' '.join(load_before)}, after {' '.join(_load())}")


SCENARIOS = {"steps": steps, "due": due, "claim": claim, "list-entry": list_entry}


def run(argv=()):
    parser = argparse.ArgumentParser(prog="make bench BENCH=engine ARGS=...")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    parser.add_argument("--enrollments", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--due", type=int, default=10_000, help="due: how many fall due at once")
    parser.add_argument("--members", type=int, default=100_000, help="list-entry: list size")
    parser.add_argument("--chunk", type=int, default=None, help="list-entry: members per INSERT")
    options = parser.parse_args(list(argv))
    for name in options.scenario or ["steps", "list-entry"]:
        print(f"   -- {name} (load average {' '.join(_load())})")
        # Each scenario starts from empty tables.
        tables = [Contact, Journey, ContactList]
        _sql(f"TRUNCATE {', '.join(m._meta.db_table for m in tables)} CASCADE")
        SCENARIOS[name](options)
