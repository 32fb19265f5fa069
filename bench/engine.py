"""How fast the engine moves enrollments: entry, claim and advance.

Contacts are inserted set-based; each then enters a journey of a condition
(on an attribute) and a delay, so one pass runs two steps per enrollment.
The figures are the engine's own overhead (no mail is sent).
"""

import time

from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Contact
from journeys.models import ConditionStep, DelayStep, Enrollment, Journey, JourneyTrigger
from journeys.services.runner import enrollments_advance
from journeys.services.scheduling import enrollments_claim_due

CONTACTS = 5_000
BATCH = 500


def _rate(count, seconds):
    return f"{count / seconds:,.0f}/s" if seconds else "n/a"


def run():
    journey = Journey.objects.create(name="Bench journey", state=Journey.State.LIVE)
    JourneyTrigger.objects.create(journey=journey, kind="event", event_name="bench")
    ConditionStep.objects.create(
        journey=journey,
        key="is-pro",
        position=1,
        kind="attribute",
        attribute="plan",
        operator="eq",
        value="pro",
    )
    DelayStep.objects.create(journey=journey, key="wait", position=2, amount=1, unit="days")

    started = time.perf_counter()
    Contact.objects.bulk_create(
        [
            Contact(email=f"bench{i}@example.com", attributes={"plan": "pro" if i % 2 else "free"})
            for i in range(CONTACTS)
        ],
        batch_size=1000,
    )
    contacts_s = time.perf_counter() - started
    print(f"   insert {CONTACTS:,} contacts: {contacts_s:.2f}s ({_rate(CONTACTS, contacts_s)})")

    first_step = journey.steps.order_by("position").first()
    now = timezone.now()
    started = time.perf_counter()
    Enrollment.objects.bulk_create(
        [
            Enrollment(
                journey=journey,
                contact_id=pk,
                current_step=first_step,
                next_run_at=now,
                entered_at=now,
            )
            for pk in Contact.objects.values_list("pk", flat=True).iterator()
        ],
        batch_size=1000,
    )
    enroll_s = time.perf_counter() - started
    print(f"   enroll {CONTACTS:,}: {enroll_s:.2f}s ({_rate(CONTACTS, enroll_s)})")

    claim_s = advance_s = 0.0
    queries = batches = 0
    while True:
        t0 = time.perf_counter()
        # The bench runs the job's service itself instead of going through Redis.
        claim = enrollments_claim_due(limit=BATCH, enqueue=False)
        claim_s += time.perf_counter() - t0
        if claim is None:
            break
        t0 = time.perf_counter()
        reset_queries()  # the query log is capped; start each batch empty
        with CaptureQueriesContext(connection) as ctx:
            enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)
        advance_s += time.perf_counter() - t0
        queries += len(ctx)
        batches += 1
    waiting = Enrollment.objects.filter(state=Enrollment.State.WAITING).count()
    print(f"   claim {batches} batches of {BATCH}: {claim_s:.2f}s")
    print(
        f"   advance {waiting:,} enrollments (2 steps each): {advance_s:.2f}s "
        f"({_rate(waiting, advance_s)}), {queries / max(waiting, 1):.1f} queries per enrollment"
    )
