"""How fast the admin's busiest pages open on a big database.

Seeds, with set-based SQL, 1,000,000 contacts and 10,000,000 messages spread
over 90 days (today's share as on any other day, about 1 in 90; statuses,
skips, bounces and complaints in realistic shares), plus events, enrollments
and step runs; then opens each page through Django's test client, signed in
as a superuser, and prints its time (the median of a few loads after one to
warm up) and its query count. Target: every page under 500 ms.

    make bench BENCH=admin_pages
    WAYMARK_BENCH_MESSAGES=1000000 WAYMARK_BENCH_CONTACTS=100000 make bench BENCH=admin_pages
"""

import json
import os
import statistics
import time
from urllib.parse import quote

from django.contrib.auth import get_user_model
from django.db import connection
from django.template import Template as DjangoTemplate
from django.test import Client
from django.test.utils import CaptureQueriesContext, _TestState
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact, ContactList, Event, ListMembership, Segment
from imports.models import Import
from journeys.models import DelayStep, Enrollment, Journey, SendMessageStep, StepRun
from messaging.models import Message, Template
from subscriptions.models import Channel, MessageType
from tests.journeys.branching import journey_with_splits

LOADS = 5
BIG_JOURNEY = "Bench journey of 40 steps"
TARGET_MS = 500


def run():
    contacts = int(os.environ.get("WAYMARK_BENCH_CONTACTS", 1_000_000))
    messages = int(os.environ.get("WAYMARK_BENCH_MESSAGES", 10_000_000))
    # A contact in one journey each, with a step run or two, and an event each.
    others = int(os.environ.get("WAYMARK_BENCH_OTHERS", contacts))
    started = time.perf_counter()
    if Contact.objects.filter(email__startswith="bench").exists():
        # A database kept from an earlier run (WAYMARK_BENCH_KEEP=1).
        low, high = (
            Contact.objects.order_by(f).values_list("pk", flat=True)[0] for f in ("pk", "-pk")
        )
        contact_id = low + (high - low) // 2
        print(f"   reusing the seeded database ({Contact.objects.count():,} contacts)")
    else:
        contact_id = _seed(contacts=contacts, messages=messages, others=others)
        print(
            f"   {contacts:,} contacts, {messages:,} messages, {others:,} events, enrollments and "
            f"step runs; set up in {time.perf_counter() - started:.0f}s"
        )
    started = time.perf_counter()
    journey, big_list, segment = _seed_pages()
    print(f"   journey of 40 steps, lists, segments, imports: {time.perf_counter() - started:.0f}s")
    time_pages(contact_id, journey=journey, big_list=big_list, segment=segment)


def time_pages(contact_id: int, *, journey, big_list, segment) -> None:
    """Open each page as a superuser; print its median time and query count."""
    user = get_user_model().objects.filter(username="bench").first()
    user = user or get_user_model().objects.create_superuser("bench", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    # Pages are timed as served: without the test environment's hook on every
    # template render (it copies each template's context for the test client;
    # on a page of many form widgets, such as the journey editor, that is a
    # third of the time).
    DjangoTemplate._render = _TestState.saved_data.template_render
    messages_list = reverse("admin:messaging_message_changelist")
    enrollments_list = reverse("admin:journeys_enrollment_changelist")
    contacts_list = reverse("admin:contacts_contact_changelist")
    diagram = reverse("admin:journeys_journey_diagram", args=[journey.pk])
    editor = reverse("admin:journeys_journey_change", args=[journey.pk])
    a_step = journey.steps.order_by("position")[20]
    pages = [
        ("admin index (dashboard)", reverse("admin:index")),
        ("journeys", reverse("admin:journeys_journey_changelist")),
        ("journey page (diagram, 40 steps)", diagram),
        ("journey editor (40 steps)", editor),
        # A step's box on the diagram opens the editor on that step's form.
        ("journey editor on one step", f"{editor}?step={a_step.pk}"),
        ("contacts", contacts_list),
        ("contacts in a 1,000,000 list", f"{contacts_list}?lists__id__exact={big_list.pk}"),
        ("one contact (timeline)", reverse("admin:contacts_contact_change", args=[contact_id])),
        ("lists", reverse("admin:contacts_contactlist_changelist")),
        ("segments", reverse("admin:contacts_segment_changelist")),
        ("segment editor", reverse("admin:contacts_segment_change", args=[segment.pk])),
        ("segment editor's count", f"{reverse('admin:contacts_segment_preview')}?"
                                   f"segment={segment.pk}&conditions={quote(json.dumps(segment.conditions))}"),
        ("messages", messages_list),
        ("messages needing attention", f"{messages_list}?attention=yes"),
        ("events", reverse("admin:contacts_event_changelist")),
        ("enrollments", enrollments_list),
        ("enrollments needing attention", f"{enrollments_list}?attention=yes"),
        ("failed enrollments", f"{enrollments_list}?state__exact=failed"),
        ("step runs", reverse("admin:journeys_steprun_changelist")),
        ("imports", reverse("admin:imports_import_changelist")),
    ]  # fmt: skip
    print(
        f"   load average {' '.join(f'{n:.1f}' for n in os.getloadavg())} on {os.cpu_count()} cores"
    )
    print(f"   {'page':<36} {'median ms':>10} {'max ms':>8} {'queries':>8}")
    slow = []
    for name, url in pages:
        response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        times = []
        for _ in range(LOADS):
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (name, response.status_code)
        median = statistics.median(times)
        if median > TARGET_MS:
            slow.append(name)
        print(f"   {name:<36} {median:>10.0f} {max(times):>8.0f} {len(captured):>8}")
        if os.environ.get("WAYMARK_BENCH_SQL"):
            for query in sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:3]:
                print(f"      {float(query['time']) * 1000:.0f} ms  {query['sql'][:300]}")
    print(f"   over {TARGET_MS} ms: {', '.join(slow) if slow else 'none'}")
    print(f"   load average {' '.join(f'{n:.1f}' for n in os.getloadavg())}")


def _seed_pages():
    """What the pages beyond the big lists need, added to a seeded database
    once: a live journey of 40 steps with splits, 100,000 contacts inside it
    spread over its steps and 300,000 of its sends in the last 30 days; ten
    lists (one of every contact, one of half, the others 1,000 to 50,000);
    ten segments; fifty imports."""
    journey = Journey.objects.filter(name=BIG_JOURNEY).first()
    if journey is not None:
        return (
            journey,
            ContactList.objects.get(name="Bench everyone"),
            Segment.objects.get(name="Bench segment 0"),
        )
    templates = list(Template.objects.filter(name__startswith="Bench"))
    journey = journey_with_splits(name=BIG_JOURNEY, blocks=4, templates=templates)
    Journey.objects.filter(pk=journey.pk).update(state=Journey.State.LIVE)
    steps = list(journey.steps.order_by("position").values_list("pk", flat=True))
    sends = list(
        SendMessageStep.objects.filter(journey=journey)
        .order_by("position")
        .values_list("pk", flat=True)
    )
    now = timezone.now()
    step_rows = ",".join(f"({n}, {pk})" for n, pk in enumerate(steps))
    send_rows = ",".join(f"({n}, {pk})" for n, pk in enumerate(sends))
    lists = [ContactList.objects.create(name=name) for name in ("Bench everyone", "Bench half")]
    lists += [ContactList.objects.create(name=f"Bench list {n}") for n in range(8)]
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            f"""
            WITH s (n, step_id) AS (VALUES {step_rows})
            INSERT INTO {Enrollment._meta.db_table}
                (journey_id, contact_id, state, current_step_id, sequence, attempts,
                 next_run_at, wait_event_name, wait_key, wait_value, trigger_data, parallel,
                 entered_at, finished_at, exit_reason, holdout, last_error)
            SELECT %(journey)s, c.id, 'waiting', s.step_id, 2, 0, %(now)s + interval '1 day',
                   '', '', '', '{{}}'::jsonb, false, %(now)s - interval '20 days', NULL, '',
                   false, ''
            FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                  FROM {Contact._meta.db_table} ORDER BY id LIMIT 100000) c
            JOIN s ON s.n = c.n %% {len(steps)}
            """,
            {"journey": journey.pk, "now": now},
        )
        cursor.execute(
            f"""
            WITH s (n, step_id) AS (VALUES {send_rows})
            INSERT INTO {StepRun._meta.db_table}
                (enrollment_id, step_id, sequence, outcome, branch, detail, error,
                 started_at, finished_at, message_id)
            SELECT e.id, s.step_id, 1, 'continued', '', '', '', m.created_at, m.created_at, m.id
            FROM (SELECT id, created_at, row_number() OVER (ORDER BY id) AS n
                  FROM {Message._meta.db_table}
                  WHERE created_at > %(now)s - interval '30 days' ORDER BY id LIMIT 300000) m
            JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n
                  FROM {Enrollment._meta.db_table} WHERE journey_id = %(journey)s) e
              ON e.n = 1 + m.n %% 100000
            JOIN s ON s.n = m.n %% {len(sends)}
            """,
            {"journey": journey.pk, "now": now},
        )
        sizes = [1_000_000, 500_000, 50_000, 20_000, 10_000, 5_000, 2_000, 1_000, 1_000, 1_000]
        for contact_list, size in zip(lists, sizes, strict=True):
            cursor.execute(
                f"""
                INSERT INTO {ListMembership._meta.db_table}
                    (contact_list_id, contact_id, joined_at, source)
                SELECT %s, id, %s, 'import' FROM {Contact._meta.db_table} ORDER BY id LIMIT %s
                """,
                [contact_list.pk, now, size],
            )
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("VACUUM ANALYZE")
    for n in range(10):
        Segment.objects.create(
            name=f"Bench segment {n}",
            conditions={
                "all": [
                    {"attribute": "firstName", "op": "eq", "value": f"Bench {n}"},
                    {"list": lists[n].pk, "op": "member"},
                ]
            },
        )
    user = get_user_model().objects.filter(username="bench").first()
    Import.objects.bulk_create(
        Import(
            contact_list=lists[n % 10],
            file=f"imports/bench-{n}.csv",
            original_name=f"customers-{n}.csv",
            size=1_000_000,
            status=Import.Status.DONE,
            created_by=user,
        )
        for n in range(50)
    )
    return journey, lists[0], Segment.objects.get(name="Bench segment 0")


def _seed(*, contacts, messages, others) -> int:
    now = timezone.now()
    channels = {
        medium: Channel.objects.create(name=f"Bench {medium}", medium=medium)
        for medium in ("email", "sms", "push")
    }
    templates = []
    for medium, channel in channels.items():
        message_type = MessageType.objects.create(channel=channel, name=f"Bench {medium} news")
        templates.append(Template.objects.create(name=f"Bench {medium}", message_type=message_type))
    journeys = [
        Journey.objects.create(name=f"Bench journey {n}", state=Journey.State.LIVE)
        for n in range(5)
    ]
    steps = [
        DelayStep.objects.create(journey=journey, key="wait", position=1, amount=3)
        for journey in journeys
    ]
    template_rows = ",".join(
        f"({n}, {t.pk}, {t.message_type_id}, {t.message_type.channel_id}, '{medium}')"
        for n, (t, medium) in enumerate(zip(templates, channels, strict=True))
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Contact._meta.db_table}
                (email, phone, timezone, locale, attributes, blocklisted, created_at, updated_at)
            SELECT 'bench' || i || '@example.com', '', '', '',
                   jsonb_build_object('firstName', 'Bench ' || i), i %% 500 = 0,
                   %s - (i * interval '7 seconds'), %s
            FROM generate_series(1, %s) AS i
            """,
            [now, now, contacts],
        )
        cursor.execute(f"SELECT min(id), max(id) FROM {Contact._meta.db_table}")
        low, high = cursor.fetchone()
        # The secondary indexes are built once the rows are in, rather than
        # maintained row by row through 10,000,000 inserts.
        indexes = _secondary_indexes(cursor, Message._meta.db_table)
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        # The rows below point at rows that exist by construction: their
        # foreign-key checks (triggers, one per row) are skipped, which takes
        # the seed from most of an hour to minutes; the indexes get memory.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        # Messages in time order (as they are written), over 90 days up to now:
        # 85 % sent (1 % of them bounced, 0.1 % complained, 25 % opened),
        # 11 % skipped, 2 % failed, the rest queued.
        cursor.execute(
            f"""
            WITH t (n, template_id, message_type_id, channel_id, medium) AS (
                VALUES {template_rows}
            )
            INSERT INTO {Message._meta.db_table}
                (contact_id, template_id, message_type_id, channel_id, medium, origin, is_test,
                 idempotency_key, status, skip_reason, error, attempts, context, to_address,
                 subject, links, provider_message_id, created_at, updated_at, sent_at,
                 failed_at, opened_at, bounced_at, complained_at, resent_by)
            SELECT %(low)s + (i::bigint * 7919) %% (%(high)s - %(low)s + 1),
                   t.template_id, t.message_type_id, t.channel_id, t.medium, 'journey', false,
                   'bench:' || i,
                   s.status,
                   CASE WHEN s.status = 'skipped'
                        THEN (ARRAY['daily_cap', 'channel_unsubscribed', 'no_address',
                                    'blocklisted'])[1 + i %% 4] ELSE '' END,
                   CASE WHEN s.status = 'failed' THEN '550 No such user' ELSE '' END,
                   1, '{{}}'::jsonb, 'bench' || i || '@example.com', 'Hello', '[]'::jsonb, '',
                   s.at, s.at,
                   CASE WHEN s.status = 'sent' THEN s.at END,
                   CASE WHEN s.status = 'failed' THEN s.at END,
                   CASE WHEN s.status = 'sent' AND i %% 4 = 0 THEN s.at END,
                   CASE WHEN s.status = 'sent' AND i %% 100 = 1 THEN s.at END,
                   CASE WHEN s.status = 'sent' AND i %% 1000 = 2 THEN s.at END,
                   ''
            FROM generate_series(1, %(messages)s) AS i
            CROSS JOIN LATERAL (
                SELECT %(now)s - interval '90 days' * (1 - i::float / %(messages)s) AS at,
                       CASE WHEN i %% 100 < 85 THEN 'sent'
                            WHEN i %% 100 < 96 THEN 'skipped'
                            WHEN i %% 100 < 98 THEN 'failed'
                            ELSE 'queued' END AS status
            ) s
            JOIN t ON t.n = (CASE WHEN i %% 10 < 8 THEN 0 WHEN i %% 10 < 9 THEN 1 ELSE 2 END)
            """,
            {"low": low, "high": high, "messages": messages, "now": now},
        )
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute(
            f"""
            INSERT INTO {Event._meta.db_table}
                (contact_id, name, data, occurred_at, received_at, dispatched)
            SELECT %(low)s + (i::bigint * 104729) %% (%(high)s - %(low)s + 1),
                   (ARRAY['signed_up', 'purchase', 'viewed_page'])[1 + i %% 3],
                   '{{}}'::jsonb,
                   %(now)s - interval '90 days' * (1 - i::float / %(n)s),
                   %(now)s - interval '90 days' * (1 - i::float / %(n)s),
                   true
            FROM generate_series(1, %(n)s) AS i
            """,
            {"low": low, "high": high, "n": others, "now": now},
        )
        # One passage per contact, spread over the five journeys: most
        # finished, some waiting on the delay, a few failed.
        journey_rows = ",".join(
            f"({n}, {j.pk}, {s.pk})" for n, (j, s) in enumerate(zip(journeys, steps, strict=True))
        )
        cursor.execute(
            f"""
            WITH j (n, journey_id, step_id) AS (VALUES {journey_rows})
            INSERT INTO {Enrollment._meta.db_table}
                (journey_id, contact_id, state, current_step_id, sequence, attempts,
                 next_run_at, wait_event_name, wait_key, wait_value, trigger_data, parallel,
                 entered_at, finished_at, exit_reason, holdout, last_error)
            SELECT j.journey_id, c.id, s.state,
                   CASE WHEN s.state IN ('waiting', 'failed') THEN j.step_id END,
                   2, 0,
                   CASE WHEN s.state = 'waiting' THEN %(now)s + interval '1 day' * (c.id %% 3) END,
                   '', '', '', '{{}}'::jsonb, false, s.at,
                   CASE WHEN s.state IN ('completed', 'failed') THEN s.at END, '', false,
                   CASE WHEN s.state = 'failed' THEN 'RuntimeError: CRM answered 500' ELSE '' END
            FROM (SELECT id FROM {Contact._meta.db_table} ORDER BY id LIMIT %(n)s) c
            CROSS JOIN LATERAL (
                SELECT %(now)s - interval '90 days' * (1 - (c.id - %(low)s)::float / %(n)s) AS at,
                       CASE WHEN c.id %% 100 < 80 THEN 'completed'
                            WHEN c.id %% 1000 = 999 THEN 'failed'
                            ELSE 'waiting' END AS state
            ) s
            JOIN j ON j.n = c.id %% 5
            """,
            {"now": now, "low": low, "n": others},
        )
        cursor.execute(
            f"""
            INSERT INTO {StepRun._meta.db_table}
                (enrollment_id, step_id, sequence, outcome, branch, detail, error,
                 started_at, finished_at)
            SELECT e.id, e.current_step_id, 1, 'waiting', '', '', '', e.entered_at, e.entered_at
            FROM {Enrollment._meta.db_table} e
            """
        )
        cursor.execute("SET session_replication_role = DEFAULT")
        # As autovacuum would soon: statistics, and the visibility map that
        # lets index-only scans skip the table.
        cursor.execute("VACUUM ANALYZE")
    return low + (high - low) // 2


def _secondary_indexes(cursor, table) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the table's indexes that back no
    constraint (the primary key and unique constraints stay)."""
    cursor.execute(
        """
        SELECT i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = to_regclass(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        """,
        [table],
    )
    return cursor.fetchall()
