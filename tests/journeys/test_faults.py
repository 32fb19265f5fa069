"""Correctness under faults, with real processes.

The scheduler (`manage.py run_scheduler`) and rq workers (`manage.py
rqworker`) run as subprocesses against the test database and Redis, sending
to a real SMTP server that counts what each recipient received. Then a
worker is killed with SIGKILL in the middle of a batch, Redis is flushed
mid-run, and two schedulers and two workers share the work: every
enrollment is advanced once, no email arrives twice, and a send whose
outcome is unknown is recorded as interrupted rather than sent again.

Selected with `-m faults` (or left out with `-m "not faults"`); each takes
some seconds, as it waits for leases to run out.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from contacts.models import Contact
from journeys.models import Enrollment, StepRun
from messaging.models import Message
from tests.conftest import free_port
from tests.factories import (
    JourneyFactory,
    MessageTypeFactory,
    SendMessageStepFactory,
    TemplateFactory,
)

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(settings.BASE_DIR)
SUBJECTS = ("First email", "Second email")
# Generous bounds for a busy machine: a run that needs longer is stuck.
PATIENCE = 90


class CountingSmtp:
    """An aiosmtpd handler that counts each (recipient, subject) it receives.

    A message counts once the server has it, before the sender hears back:
    killed in between, the sender cannot know it arrived, and a second
    arrival would be a duplicate the recipient sees.
    """

    def __init__(self, delay=0.0):
        self.delay = delay
        self.received = Counter()

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        for recipient in envelope.rcpt_tos:
            self.received[(recipient, str(message["Subject"]))] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 Message accepted for delivery"

    @property
    def total(self):
        return sum(self.received.values())


@pytest.fixture
def mail_server():
    handler = CountingSmtp()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    yield handler
    controller.stop()


class Processes:
    """Waymark's own commands run as separate processes, stopped at the end."""

    def __init__(self, env, log_dir):
        self.env = env
        self.log_dir = log_dir
        self.started = []

    def start(self, name, *args):
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 (closed in stop_all)
        process = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append((name, process, log))
        return process

    def scheduler(self, name="scheduler"):
        return self.start(name, "run_scheduler", "--interval", "0.2")

    def worker(self, name="worker"):
        return self.start(name, "rqworker", "default", "--worker-class", "rq.worker.SimpleWorker")

    def logs(self):
        return "\n".join(
            f"--- {name} (exit {process.poll()}) ---\n"
            + (self.log_dir / f"{name}.log").read_text()[-3000:]
            for name, process, _ in self.started
        )

    def stop_all(self):
        for _, process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process, log in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


@pytest.fixture
def processes(transactional_db, rq_queue, mail_server, tmp_path):
    """Starts scheduler and worker processes that see the test database (the
    test's writes commit: the test is transactional) and its Redis database."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{credentials}@{host}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_URL": f"smtp://127.0.0.1:{mail_server.port}",
        "EMAIL_TIMEOUT": "10",
        "WAYMARK_SCHEDULER_INTERVAL": "0.2",
        "DEBUG": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env.setdefault("SECRET_KEY", "waymark-tests-only-secret-key-not-for-production")
    running = Processes(env, tmp_path)
    yield running
    running.stop_all()


def wait_until(predicate, *, what, processes, timeout=PATIENCE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"Not {what} after {timeout}s.\n{processes.logs()}")


def two_email_journey(count):
    """A live journey of two emails, and `count` contacts due at its first step now."""
    journey = JourneyFactory(name="Two emails")
    message_type = MessageTypeFactory()
    first, _ = (
        SendMessageStepFactory(
            journey=journey,
            position=position,
            key=f"email-{position}",
            template=TemplateFactory(
                message_type=message_type, subject=subject, html_body=f"<p>{subject}</p>"
            ),
        )
        for position, subject in enumerate(SUBJECTS, start=1)
    )
    contacts = Contact.objects.bulk_create(
        Contact(email=f"contact{i}@example.com", attributes={"firstName": "Ada"})
        for i in range(count)
    )
    now = timezone.now()
    Enrollment.objects.bulk_create(
        Enrollment(
            journey=journey, contact=contact, current_step=first, entered_at=now, next_run_at=now
        )
        for contact in contacts
    )
    return journey


def all_finished():
    return not Enrollment.objects.filter(state__in=Enrollment.OPEN_STATES).exists()


def each_step_ran_once(count):
    """Every enrollment completed, with one step run per step taken."""
    assert Enrollment.objects.filter(state=Enrollment.State.COMPLETED).count() == count
    repeated = (
        StepRun.objects.values("enrollment", "sequence").annotate(n=Count("id")).filter(n__gt=1)
    )
    assert list(repeated) == []
    assert StepRun.objects.count() == count * len(SUBJECTS)


def received_at_most_once(mail_server):
    assert [key for key, n in mail_server.received.items() if n > 1] == []


def test_a_worker_killed_mid_batch_its_work_is_finished_by_another_without_a_second_send(
    processes, mail_server
):
    # Given a slow mail server, a short lease, and one batch of contacts due
    count = 12
    mail_server.delay = 0.3
    processes.env.update(WAYMARK_LEASE_SECONDS="4", WAYMARK_BATCH_SIZE="100")
    two_email_journey(count)
    processes.scheduler()
    doomed = processes.worker("doomed-worker")

    # When the worker is killed while it is handing the batch's emails over
    wait_until(lambda: mail_server.total >= 3, what="sending the first emails", processes=processes)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    sent_before_kill = mail_server.total
    # and another worker starts
    processes.worker("second-worker")
    wait_until(all_finished, what="every enrollment finished", processes=processes)

    # Then every enrollment went through each step once
    each_step_ran_once(count)
    assert sent_before_kill < count  # the kill did land mid-batch
    # and no one received an email twice
    received_at_most_once(mail_server)
    messages = Message.objects.select_related("contact", "template")
    assert messages.count() == count * len(SUBJECTS)
    interrupted = []
    for message in messages:
        received = mail_server.received[(message.contact.email, message.template.subject)]
        if message.status == Message.Status.SENT:
            assert received == 1, message
        else:
            # what the killed worker was handing over: not sent again, not
            # left looking in flight, but recorded as of unknown outcome
            assert message.status == Message.Status.FAILED, message
            assert message.error == Message.INTERRUPTED_ERROR
            interrupted.append(message)
    assert interrupted
    assert {m.template.subject for m in interrupted} == {"First email"}


def test_redis_flushed_mid_run_every_enrollment_still_advances_exactly_once(
    processes, mail_server, rq_queue
):
    # Given many small batches and a short lease
    count = 120
    mail_server.delay = 0.005
    processes.env.update(WAYMARK_LEASE_SECONDS="3", WAYMARK_BATCH_SIZE="10")
    two_email_journey(count)
    processes.scheduler()
    processes.worker()

    # When Redis loses everything while the work is under way
    wait_until(
        lambda: mail_server.total >= 40, what="sending the first emails", processes=processes
    )
    rq_queue.connection.flushdb()
    lost_at = mail_server.total

    # Then the leases of the lost jobs run out and the work is claimed again
    wait_until(all_finished, what="every enrollment finished", processes=processes)
    assert lost_at < count * len(SUBJECTS)
    each_step_ran_once(count)
    # and each contact received each email exactly once
    assert mail_server.received == Counter(
        {(f"contact{i}@example.com", subject): 1 for i in range(count) for subject in SUBJECTS}
    )
    assert set(Message.objects.values_list("status", flat=True)) == {Message.Status.SENT}


def test_two_schedulers_and_two_workers_advance_each_enrollment_once(processes, mail_server):
    # Given a thousand contacts due at once
    count = 1000
    processes.env.update(WAYMARK_LEASE_SECONDS="60", WAYMARK_BATCH_SIZE="50")
    two_email_journey(count)

    # When two schedulers and two workers run at the same time
    processes.scheduler("scheduler-1")
    processes.scheduler("scheduler-2")
    processes.worker("worker-1")
    processes.worker("worker-2")
    wait_until(all_finished, what="every enrollment finished", processes=processes, timeout=150)

    # Then each step ran once per enrollment and each email arrived once
    each_step_ran_once(count)
    assert mail_server.received == Counter(
        {(f"contact{i}@example.com", subject): 1 for i in range(count) for subject in SUBJECTS}
    )
    assert set(Message.objects.values_list("status", flat=True)) == {Message.Status.SENT}


def test_a_batch_slower_than_its_lease_is_shared_without_a_second_send(processes, mail_server):
    # Given a mail server so slow that one batch's emails outlast the lease
    count = 12
    mail_server.delay = 0.3
    processes.env.update(WAYMARK_LEASE_SECONDS="2", WAYMARK_BATCH_SIZE="100")
    two_email_journey(count)

    # When two workers run: the second claims the batch while the first still sends
    processes.scheduler()
    processes.worker("worker-1")
    processes.worker("worker-2")
    wait_until(all_finished, what="every enrollment finished", processes=processes)

    # Then each step ran once per enrollment, and no email arrived twice
    each_step_ran_once(count)
    received_at_most_once(mail_server)
    for message in Message.objects.select_related("contact", "template"):
        received = mail_server.received[(message.contact.email, message.template.subject)]
        assert (message.status, received) == ("sent", 1), message
