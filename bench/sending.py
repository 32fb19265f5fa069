"""Email end to end through the real pipeline, with real rq workers.

N contacts (BENCH_SEND_CONTACTS, default 100,000) wait at a journey's send
step. The scheduler claims them in batches; WORKERS rq SimpleWorker processes
(BENCH_SEND_WORKERS, default 2) render each email, check consent at the
instant of sending, hand it over SMTP to a local sink process and write the
rows. The figure is emails accepted by the sink per second, from the first
claim to the last email.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import django_rq
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from contacts.models import Contact
from journeys.models import DelayStep, Enrollment, Journey, JourneyTrigger, SendMessageStep
from journeys.services.scheduling import scheduler_tick
from messaging.models import Message, Template
from subscriptions.models import Channel, MessageType

HTML = """\
<html><head><style>.button { background-color: #0b6e4f; color: #ffffff; padding: 12px 20px;
border-radius: 6px; text-decoration: none; } p { line-height: 1.5; }</style></head>
<body><div style="font-family: Helvetica, Arial, sans-serif; color: #1f2933;">
<h1>Welcome aboard, {% firstof contact.first_name 'there' %}!</h1>
<p>Thanks for signing up for Acme on the {{ contact.plan }} plan.</p>
<p><a class="button" href="https://acme.example/projects/new">Create a project</a></p>
<p>Read <a href="https://acme.example/docs">the docs</a> or reply to this email.</p>
<p style="font-size: 12px;"><a href="{{ links.preferences }}">Preferences</a> ·
<a href="{{ links.unsubscribe }}">Unsubscribe</a></p></div></body></html>
"""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _count(path):
    try:
        return int(Path(path).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def run():
    contacts = int(os.environ.get("BENCH_SEND_CONTACTS", 100_000))
    workers = int(os.environ.get("BENCH_SEND_WORKERS", 2))
    channel = Channel.objects.create(name="Bench email", medium="email")
    message_type = MessageType.objects.create(channel=channel, name="Bench news")
    template = Template(
        name="Bench welcome",
        message_type=message_type,
        from_name="Acme",
        subject="Welcome to Acme, {% firstof contact.first_name 'there' %}!",
        preheader="Your first project is two minutes away.",
        html_body=HTML,
    )
    template.full_clean()
    template.save()
    journey = Journey.objects.create(name="Bench welcome", state=Journey.State.LIVE)
    JourneyTrigger.objects.create(journey=journey, kind="event", event_name="bench")
    send = SendMessageStep.objects.create(journey=journey, key="welcome", position=1,
                                          template=template)  # fmt: skip
    DelayStep.objects.create(journey=journey, key="wait", position=2, amount=2, unit="days")

    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Set-based, as an import would: the benchmark is about sending.
        cursor.execute(
            f"""
            INSERT INTO {Contact._meta.db_table}
                (email, phone, timezone, locale, attributes, blocklisted, created_at, updated_at)
            SELECT 'bench' || i || '@example.com', '', '', '',
                   jsonb_build_object('firstName', 'Ada' || i, 'plan',
                                      CASE WHEN i %% 2 = 0 THEN 'pro' ELSE 'free' END),
                   false, now(), now()
            FROM generate_series(1, %s) AS i
            """,
            [contacts],
        )
        now = timezone.now()
        cursor.execute(
            f"""
            INSERT INTO {Enrollment._meta.db_table}
                (journey_id, contact_id, state, current_step_id, sequence, attempts, next_run_at,
                 wait_event_name, trigger_data, entered_at, exit_reason, last_error)
            SELECT %s, id, 'active', %s, 0, 0, %s, '', '{{}}'::jsonb, %s, '', ''
            FROM {Contact._meta.db_table}
            """,
            [journey.pk, send.pk, now, now],
        )
        cursor.execute("ANALYZE")
    print(f"   {contacts:,} contacts enrolled in {time.perf_counter() - started:.1f}s")

    queue = django_rq.get_queue("default")
    queue.connection.flushdb()
    port = _free_port()
    count_file = Path(tempfile.mkdtemp(prefix="bench-smtp-")) / "count"
    root = Path(settings.BASE_DIR)
    sink = subprocess.Popen(
        [sys.executable, "-m", "bench.smtp_counter", str(port), str(count_file)], cwd=root
    )
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}"
        ),
        "EMAIL_URL": f"smtp://127.0.0.1:{port}",
        "LOG_LEVEL": "WARNING",
    }
    time.sleep(1)
    command = [sys.executable, "manage.py", "rqworker", "default", "--worker-class",
               "rq.worker.SimpleWorker", "--verbosity", "0"]  # fmt: skip
    worker_processes = [subprocess.Popen(command, cwd=root, env=env) for _ in range(workers)]
    waiting = Enrollment.objects.filter(journey=journey, state=Enrollment.State.ACTIVE)
    try:
        time.sleep(2)  # let the workers start before the clock does
        started = time.perf_counter()
        while waiting.exists():
            # Keep a few batches queued per worker, as the scheduler process would.
            if queue.count < workers * 2:
                scheduler_tick(max_batches=workers * 2)
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
    finally:
        for process in worker_processes:
            process.terminate()
        for process in worker_processes:
            process.wait()
        sink.terminate()
        sink.wait()
    delivered = _count(count_file)
    sent = Message.objects.filter(status="sent").count()
    print(f"   {workers} worker(s): {sent:,} emails sent, {delivered:,} accepted by the sink, "
          f"in {elapsed:.1f}s: {delivered / elapsed:,.0f} emails/s")  # fmt: skip
    other = dict(
        Message.objects.exclude(status="sent").values_list("status").annotate(n=Count("pk"))
    )
    if other:
        print(f"   not sent: {other}")
