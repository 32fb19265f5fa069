"""How fast dispatched events wake enrollments waiting for them.

A million contacts wait at a wait-for-event step (a purchase); batches of
10,000 purchase events, one per contact chosen at random, are dispatched
as the event dispatcher does, and every waiting contact they name is woken.
The figure is events dispatched (and contacts woken) per second, with the
plan of the wake-up statement: found through each contact's enrollments,
not by scanning the waiting ones. Each woken contact gets a Wakeup row; the
time the scheduler then takes to claim a batch of them is printed too.

    make bench BENCH=wakeups            # 1,000,000 waiting
    WAYMARK_BENCH_WAITING=100000 make bench BENCH=wakeups
"""

import os
import random
import time

from django.db import connection
from django.utils import timezone

from contacts.models import Contact, Event
from contacts.services.events import events_dispatch
from journeys.models import Enrollment, Journey, WaitForEventStep, Wakeup
from journeys.services.entry import WAITING_FOR_EVENTS_SQL
from journeys.services.scheduling import enrollments_claim_due

BATCH = 10_000
BATCHES = 5


def run():
    waiting = int(os.environ.get("WAYMARK_BENCH_WAITING", 1_000_000))
    journey = Journey.objects.create(name="Bench wait", state=Journey.State.LIVE)
    wait = WaitForEventStep.objects.create(
        journey=journey, key="bought", position=1, event_name="purchase", timeout_amount=30
    )
    started = time.perf_counter()
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Contact._meta.db_table}
                (email, phone, timezone, locale, attributes, blocklisted, created_at, updated_at)
            SELECT 'wait' || i || '@example.com', '', '', '', '{{}}'::jsonb, false, now(), now()
            FROM generate_series(1, %s) AS i
            """,
            [waiting],
        )
        cursor.execute(
            f"""
            INSERT INTO {Enrollment._meta.db_table}
                (journey_id, contact_id, state, current_step_id, sequence, attempts, next_run_at,
                 wait_event_name, wait_since, wait_timeout_at, trigger_data, entered_at,
                 exit_reason, last_error)
            SELECT %s, id, 'waiting', %s, 1, 0, %s, 'purchase', %s, %s, '{{}}'::jsonb, %s, '', ''
            FROM {Contact._meta.db_table}
            """,
            [journey.pk, wait.pk, now + wait.timeout, now, now + wait.timeout, now],
        )
        cursor.execute("ANALYZE")
        cursor.execute(f"SELECT min(id), max(id) FROM {Contact._meta.db_table}")
        low, high = cursor.fetchone()
    print(f"   {waiting:,} contacts waiting, set up in {time.perf_counter() - started:.1f}s")

    rng = random.Random(7)
    total_events, total_seconds = 0, 0.0
    for number in range(1, BATCHES + 1):
        chosen = rng.sample(range(low, high + 1), BATCH)
        Event.objects.bulk_create(
            Event(contact_id=contact_id, name="purchase", data={}, occurred_at=timezone.now())
            for contact_id in chosen
        )
        began = time.perf_counter()
        dispatched = events_dispatch(limit=BATCH)
        seconds = time.perf_counter() - began
        wake_seconds = _time_wake(chosen)
        woken = Wakeup.objects.count()
        total_events += dispatched.events
        total_seconds += seconds
        print(
            f"   batch {number}: {dispatched.events:,} events dispatched in {seconds:.2f}s "
            f"({dispatched.events / seconds:,.0f}/s; the wake-up statement alone "
            f"{wake_seconds * 1000:.0f} ms); {woken:,} contacts woken so far"
        )
    print(f"   wake-ups: {total_events / total_seconds:,.0f} events/s over {BATCHES} batches")

    # What waking leaves to the scheduler: claiming the woken (one lease
    # update each, as for any due enrollment).
    began = time.perf_counter()
    claim = enrollments_claim_due(enqueue=False, limit=BATCH)
    seconds = time.perf_counter() - began
    print(
        f"   the scheduler then claims {len(claim.enrollment_ids):,} woken enrollments "
        f"in {seconds * 1000:.0f} ms"
    )

    ids = list(Event.objects.order_by("-pk").values_list("pk", flat=True)[:BATCH])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {WAITING_FOR_EVENTS_SQL}", ["waiting", ids])
        plan = [row[0] for row in cursor.fetchall()]
    print("   plan of the wake-up query:")
    for line in plan:
        print(f"     {line[:110]}")


def _time_wake(contact_ids):
    """The wake-up statement alone, for one more batch of events (rolled back)."""
    from django.db import transaction

    from journeys.services.entry import _wake_waiting

    with transaction.atomic():
        events = Event.objects.bulk_create(
            Event(contact_id=contact_id, name="purchase", data={}, occurred_at=timezone.now())
            for contact_id in contact_ids
        )
        began = time.perf_counter()
        _wake_waiting([e.pk for e in events], timezone.now())
        seconds = time.perf_counter() - began
        transaction.set_rollback(True)
    return seconds
