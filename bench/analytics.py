"""How fast a journey's analytics read on a big database.

Seeds, set-based (generate_series), 1,000,000 contacts each through one of
20 journeys (a 10 % holdout, an A/B split, a send step per branch, a delay),
their step runs, 10,000,000 messages from the send steps over 90 days and
their engagement rows (a delivery, open and click each where stamped); then
counts them into the tallies with the SQL the migrations run on an existing
database, and compacts them. Then times, median of a few runs after one to
warm up: journey_analytics (30 and 90 days), journey_step_metrics (the
diagram), journeys_list_figures (20 journeys), the analytics page, the
journey's page and the journey list over Django's test client, and a
compaction of 100,000 fresh delta rows. Target: each read under 500 ms.

    make bench BENCH=analytics
    WAYMARK_BENCH_CONTACTS=100000 WAYMARK_BENCH_MESSAGES=1000000 make bench BENCH=analytics
"""

import os
import statistics
import time
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from bench.admin_pages import _secondary_indexes
from contacts.tallies import backfill
from journeys import tallies as journey_tallies
from journeys.models import (
    DelayStep,
    Enrollment,
    HoldoutStep,
    Journey,
    JourneyTally,
    RandomSplitStep,
    SendMessageStep,
)
from journeys.selectors import journey_analytics, journey_step_metrics, journeys_list_figures
from journeys.services.graph import step_connect
from journeys.services.tallies import tallies_compact_all
from messaging import tallies as message_tallies
from messaging.models import MessageTally, Template
from subscriptions.models import Channel, MessageType

JOURNEYS = 20
RUNS = 5
TARGET_MS = 500


def _load():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run():
    contacts = int(os.environ.get("WAYMARK_BENCH_CONTACTS", 1_000_000))
    messages = int(os.environ.get("WAYMARK_BENCH_MESSAGES", 10_000_000))
    print(f"   load average before: {_load()}")
    started = time.perf_counter()
    journeys = _seed(contacts=contacts, messages=messages)
    seeded = time.perf_counter() - started
    started = time.perf_counter()
    _count_into_tallies()
    counted = time.perf_counter() - started
    started = time.perf_counter()
    tallies_compact_all()
    compacted = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(
        f"   {contacts:,} contacts and enrollments, {messages:,} messages and their engagement; "
        f"seeded in {seeded:.0f}s, counted into the tallies in {counted:.0f}s "
        f"(the migrations' SQL), compacted in {compacted:.1f}s"
    )
    print(
        f"   tally rows: {JourneyTally.objects.count():,} journey, "
        f"{MessageTally.objects.count():,} message"
    )
    _time_reads(journeys)
    _explain_inside_now(journeys)
    _time_compaction()
    print(f"   load average after: {_load()}")


def _seed(*, contacts, messages):
    now = timezone.now()
    channel = Channel.objects.create(name="Bench email", medium="email")
    message_type = MessageType.objects.create(channel=channel, name="Bench news")
    journeys, send_steps = [], []
    for n in range(JOURNEYS):
        journey = Journey.objects.create(
            name=f"Bench journey {n}", state=Journey.State.LIVE, goal_event_name="purchase"
        )
        control = HoldoutStep.objects.create(journey=journey, key="control", position=1, percent=10)
        ab = RandomSplitStep.objects.create(journey=journey, key="ab", position=2, weights="1,1")
        sends = [
            SendMessageStep.objects.create(
                journey=journey, key=f"mail-{label}", position=3 + i,
                template=Template.objects.create(
                    name=f"Bench {n} {label}", message_type=message_type, subject="Hello"
                ),
            )
            for i, label in enumerate("ab")
        ]  # fmt: skip
        wait = DelayStep.objects.create(journey=journey, key="wait", position=5, amount=3)
        step_connect(step=control, targets={"next": ab})
        step_connect(step=ab, targets={"a": sends[0], "b": sends[1]})
        for send in sends:
            step_connect(step=send, targets={"next": wait})
        journeys.append(journey)
        send_steps.append((journey, control, ab, sends))
    steps_rows = ",".join(
        f"({n}, {j.pk}, {c.pk}, {ab.pk}, {s[0].pk}, {s[1].pk}, {s[0].template_id}, "
        f"{s[1].template_id})"
        for n, (j, c, ab, s) in enumerate(send_steps)
    )
    steps_cte = (
        f"WITH j (n, journey_id, control_id, ab_id, a_id, b_id, a_template, b_template) "
        f"AS (VALUES {steps_rows})"
    )
    days = "interval '90 days'"
    with connection.cursor() as cursor:
        # Seeded rows skip the triggers and foreign-key checks (replica role):
        # they are counted afterwards, set-based, as a migration would.
        cursor.execute("SET session_replication_role = replica")
        # The big tables' secondary indexes are built once their rows are in,
        # rather than maintained row by row through 20,000,000 inserts.
        indexes = [
            index
            for table in ("messaging_message", "messaging_engagement")
            for index in _secondary_indexes(cursor, table)
        ]
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute(
            """
            INSERT INTO contacts_contact
                (email, phone, timezone, locale, attributes, blocklisted, created_at, updated_at)
            SELECT 'bench' || i || '@example.com', '', '', '', '{}'::jsonb, false, %s, %s
            FROM generate_series(1, %s) AS i
            """,
            [now, now, contacts],
        )
        cursor.execute("SELECT min(id), max(id) FROM contacts_contact")
        low, high = cursor.fetchone()
        # One passage per contact: 10 % held out, the rest split a/b; 70 %
        # finished, the rest waiting; 8 % of the treated and 6 % of the
        # held out converted.
        cursor.execute(
            f"""
            {steps_cte}
            INSERT INTO journeys_enrollment
                (journey_id, contact_id, state, current_step_id, sequence, attempts,
                 next_run_at, wait_event_name, wait_key, wait_value, trigger_data, parallel,
                 entered_at, finished_at, exit_reason, holdout, last_error, goal_reached_at)
            SELECT j.journey_id, c.id, s.state, NULL, 4, 0,
                   CASE WHEN s.state = 'waiting' THEN %(now)s + interval '1 day' END,
                   '', '', '', '{{}}'::jsonb, false, s.at,
                   CASE WHEN s.state <> 'waiting' THEN s.at END,
                   CASE WHEN s.held THEN 'holdout: in the control group' ELSE '' END,
                   s.held, '',
                   CASE WHEN (s.held AND c.id %% 100 < 6) OR (NOT s.held AND c.id %% 100 >= 92)
                        THEN s.at + interval '1 day' END
            FROM generate_series(%(low)s, %(high)s) AS c(id)
            CROSS JOIN LATERAL (
                SELECT %(now)s - {days} * (1 - (c.id - %(low)s)::float / %(n)s) AS at,
                       c.id %% 10 = 0 AS held,
                       CASE WHEN c.id %% 10 = 0 THEN 'exited'
                            WHEN c.id %% 100 < 70 THEN 'completed' ELSE 'waiting' END AS state
            ) s
            JOIN j ON j.n = (c.id / 10) %% {JOURNEYS}
            """,
            {"now": now, "low": low, "high": high, "n": contacts},
        )
        # Their step runs: the holdout step for all, the split and a send step
        # for the treated.
        cursor.execute(
            f"""
            {steps_cte}
            INSERT INTO journeys_steprun
                (enrollment_id, step_id, sequence, outcome, branch, detail, error,
                 started_at, finished_at)
            SELECT e.id, r.step_id, r.seq, r.outcome, r.branch, '', '', e.entered_at, e.entered_at
            FROM journeys_enrollment e JOIN j ON j.journey_id = e.journey_id
            CROSS JOIN LATERAL (VALUES
                (j.control_id, 0, CASE WHEN e.holdout THEN 'exited' ELSE 'continued' END,
                 CASE WHEN e.holdout THEN '' ELSE 'treatment' END),
                (CASE WHEN NOT e.holdout THEN j.ab_id END, 1, 'continued',
                 CASE WHEN e.id % 2 = 0 THEN 'a' ELSE 'b' END),
                (CASE WHEN NOT e.holdout THEN
                    CASE WHEN e.id % 2 = 0 THEN j.a_id ELSE j.b_id END END, 2, 'continued', '')
            ) AS r(step_id, seq, outcome, branch)
            WHERE r.step_id IS NOT NULL
            """
        )
        # Messages from the send steps, over 90 days in time order: 85 %
        # sent (95 % of them delivered, 25 % opened, 5 % clicked, 1 % bounced),
        # 11 % skipped, 2 % failed, the rest queued.
        cursor.execute(
            f"""
            {steps_cte}
            INSERT INTO messaging_message
                (contact_id, template_id, message_type_id, channel_id, medium, origin,
                 origin_id, origin_step_id, is_test, idempotency_key, status, skip_reason, error,
                 attempts, context, to_address, subject, links, provider_message_id,
                 created_at, updated_at, sent_at, failed_at, delivered_at, opened_at,
                 clicked_at, bounced_at, resent_by)
            SELECT %(low)s + (i::bigint * 7919) %% (%(high)s - %(low)s + 1),
                   CASE WHEN i %% 2 = 0 THEN j.a_template ELSE j.b_template END,
                   %(message_type)s, %(channel)s, 'email', 'journey', NULL,
                   CASE WHEN i %% 2 = 0 THEN j.a_id ELSE j.b_id END, false,
                   'bench:' || i, s.status,
                   CASE WHEN s.status = 'skipped' THEN 'daily_cap' ELSE '' END,
                   '', 1, '{{}}'::jsonb, 'bench' || i || '@example.com', 'Hello', '[]'::jsonb,
                   '', s.at, s.at,
                   CASE WHEN s.status = 'sent' THEN s.at END,
                   CASE WHEN s.status = 'failed' THEN s.at END,
                   CASE WHEN s.status = 'sent' AND i %% 20 <> 1 THEN s.at END,
                   CASE WHEN s.status = 'sent' AND i %% 4 = 0 THEN s.at + interval '1 hour' END,
                   CASE WHEN s.status = 'sent' AND i %% 20 = 0 THEN s.at + interval '2 hours' END,
                   CASE WHEN s.status = 'sent' AND i %% 100 = 1 THEN s.at END,
                   ''
            FROM generate_series(1, %(messages)s) AS i
            CROSS JOIN LATERAL (
                SELECT %(now)s - {days} * (1 - i::float / %(messages)s) AS at,
                       CASE WHEN i %% 100 < 85 THEN 'sent'
                            WHEN i %% 100 < 96 THEN 'skipped'
                            WHEN i %% 100 < 98 THEN 'failed'
                            ELSE 'queued' END AS status
            ) s
            JOIN j ON j.n = (i / 2) %% {JOURNEYS}
            """,
            {
                "low": low, "high": high, "messages": messages, "now": now,
                "message_type": message_type.pk, "channel": channel.pk,
            },
        )  # fmt: skip
        cursor.execute(
            """
            INSERT INTO messaging_engagement
                (message_id, contact_id, kind, source, occurred_at, url, hard_bounce, details,
                 provider_event_id, created_at)
            SELECT m.id, m.contact_id, k.kind, 'tracking', k.at, '', false, '{}'::jsonb, NULL,
                   k.at
            FROM messaging_message m
            CROSS JOIN LATERAL (VALUES ('delivered', m.delivered_at), ('opened', m.opened_at),
                                       ('clicked', m.clicked_at), ('bounced', m.bounced_at))
                AS k(kind, at)
            WHERE k.at IS NOT NULL
            """
        )
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute("SET session_replication_role = DEFAULT")
    return journeys


def _count_into_tallies():
    vendor = connection.vendor
    with connection.cursor() as cursor:
        for sql in (
            backfill(message_tallies.MESSAGE_TALLY, vendor),
            backfill(journey_tallies.ENROLLMENT_TALLY, vendor),
            journey_tallies.step_runs_backfill(vendor),
        ):
            cursor.execute(sql)


def _timed(call):
    call()
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), max(times)


def _time_reads(journeys):
    journey = journeys[0]
    today = timezone.now().date()
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x")
    client = Client()
    client.force_login(user)

    def page(url, params=None):
        def load():
            response = client.get(url, params or {})
            assert response.status_code == 200, (url, response.status_code)

        return load

    since_30 = timezone.now() - timedelta(days=29)
    reads = [
        ("journey_analytics, 30 days", lambda: journey_analytics(
            journey=journey, since=today - timedelta(days=29), until=today)),
        ("journey_analytics, 90 days", lambda: journey_analytics(
            journey=journey, since=today - timedelta(days=89), until=today)),
        ("journey_step_metrics, 30 days", lambda: journey_step_metrics(
            journey=journey, since=since_30, until=timezone.now())),
        (f"journeys_list_figures, {len(journeys)} journeys", lambda: journeys_list_figures(
            journey_ids=[j.pk for j in journeys])),
        ("analytics page, 90 days", page(
            reverse("admin:journeys_journey_analytics", args=[journey.pk]),
            {"since": today - timedelta(days=89), "until": today})),
        ("journey's page (diagram)", page(
            reverse("admin:journeys_journey_change", args=[journey.pk]))),
        ("journey list", page(reverse("admin:journeys_journey_changelist"))),
    ]  # fmt: skip
    print(f"   {'read':<36} {'median ms':>10} {'max ms':>8} {'queries':>8}")
    slow = []
    for name, call in reads:
        median, slowest = _timed(call)
        with CaptureQueriesContext(connection) as captured:
            call()
        if median > TARGET_MS:
            slow.append(name)
        print(f"   {name:<36} {median:>10.1f} {slowest:>8.1f} {len(captured):>8}")
    print(f"   over {TARGET_MS} ms: {', '.join(slow) if slow else 'none'}")


def _explain_inside_now(journeys):
    """The plan of the list's one count over enrollments (contacts inside now)."""
    inside = (
        Enrollment.objects.filter(
            journey_id__in=[j.pk for j in journeys], state__in=Enrollment.OPEN_STATES
        )
        .order_by()
        .values_list("journey_id")
        .annotate(n=Count("pk"))
    )
    print("   the list's contacts inside now, EXPLAIN ANALYZE:")
    for line in inside.explain(analyze=True).splitlines():
        print(f"      {line}")


def _time_compaction():
    """100,000 delta rows (as 100,000 one-row statements would leave), then one compaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO journeys_journeytally (journey_id, step_id, day, metric, n, folded)
            SELECT j.id, NULL, CURRENT_DATE - (i %% 3), 'entered', 1, false
            FROM generate_series(1, 100000) AS i
            JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM journeys_journey) j
              ON j.n = i %% %s
            """,
            [JOURNEYS],
        )
    began = time.perf_counter()
    done = tallies_compact_all()
    print(
        f"   compaction of {done.journeys:,} fresh delta rows: "
        f"{(time.perf_counter() - began) * 1000:.0f} ms"
    )
