"""The operations dashboard on the admin's index page: what was sent today,
and what needs a person.

Every figure is a bounded query: today's rows through an index, the first
entry of an index, or a count that stops at a cap. The figures come from each
app's selectors, so each can change how it counts (say, to maintained daily
tallies) without this page changing. Each part is shown only to staff who may
see what it links to, and its queries run only for them.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import django_rq
import redis
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from rq import Worker

from contacts.redis import redis_client
from contacts.selectors import oldest_undispatched_event
from journeys.models import Enrollment
from journeys.selectors import (
    failed_enrollments_by_journey,
    oldest_overdue_enrollment,
    scheduler_last_pass,
)
from messaging.selectors import messages_needing_attention, messages_today

# Counts of rows needing attention stop here: "1,000+" says enough.
CAP = 1000
# Journeys listed with their failed enrollments.
JOURNEYS_SHOWN = 10
# The scheduler passes every WAYMARK_SCHEDULER_INTERVAL seconds when idle, and
# a busy pass takes a few seconds: silent this long, it is stopped or stuck.
SCHEDULER_SILENT_AFTER = timedelta(minutes=2)
# Enrollments due this long ago and not yet run, or events not dispatched
# this long after they came, mean the scheduler or the workers are behind.
BEHIND_AFTER = timedelta(minutes=5)
# Workers listed by name.
WORKERS_SHOWN = 10


@dataclass(frozen=True)
class Figure:
    """A count for the dashboard, which may have stopped at a cap."""

    count: int
    cap: int = CAP

    def __str__(self):
        return f"{self.cap:,}+" if self.count >= self.cap else f"{self.count:,}"


@dataclass(frozen=True)
class Lag:
    """How long ago something happened (None: never), and whether that is too long."""

    at: datetime | None
    now: datetime
    too_long: timedelta

    @property
    def age(self) -> timedelta | None:
        return None if self.at is None else max(self.now - self.at, timedelta(0))

    @property
    def alarming(self) -> bool:
        return self.age is not None and self.age > self.too_long


@dataclass(frozen=True)
class QueueHealth:
    name: str
    queued: int
    failed: int
    failed_url: str
    queue_url: str


@dataclass
class Dashboard:
    since: datetime
    now: datetime
    today: object = None
    failed_journeys: list = field(default_factory=list)
    enrollments_url: str = ""
    overdue: Lag | None = None
    messages_attention: Figure | None = None
    messages_attention_url: str = ""
    undispatched: Lag | None = None
    queues: list[QueueHealth] = field(default_factory=list)
    queues_url: str = ""
    workers: list | None = None
    workers_total: int = 0
    scheduler: Lag | None = None
    # Set when Redis did not answer: the parts read from it are left out.
    redis_error: str = ""

    @property
    def empty(self) -> bool:
        return not (self.today or self.enrollments_url or self.undispatched or self.queues_url)


def start_of_today(now: datetime) -> datetime:
    """Midnight in Waymark's time zone (TIME_ZONE)."""
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def dashboard(*, user, now: datetime | None = None) -> Dashboard:
    """The parts of the dashboard `user` may see, with their figures."""
    now = now or timezone.now()
    board = Dashboard(since=start_of_today(now), now=now)
    if user.has_perm("messaging.view_message"):
        board.today = messages_today(since=board.since)
        board.messages_attention = Figure(messages_needing_attention(cap=CAP, now=now))
        board.messages_attention_url = _changelist("messaging_message", attention="yes")
    if user.has_perm("journeys.view_enrollment"):
        board.failed_journeys = [
            (journey, Figure(journey.failed), _failed_enrollments_url(journey.pk))
            for journey in failed_enrollments_by_journey(cap=CAP, limit=JOURNEYS_SHOWN)
        ]
        board.enrollments_url = _changelist("journeys_enrollment", attention="yes")
        board.overdue = Lag(oldest_overdue_enrollment(now=now), now, BEHIND_AFTER)
    if user.has_perm("contacts.view_event"):
        board.undispatched = Lag(oldest_undispatched_event(), now, BEHIND_AFTER)
    may_manage_queues = user.has_perm("django_rq.admin")
    if may_manage_queues:
        board.queues_url = reverse("admin:django_rq_dashboard_changelist")
    # The page matters most when something is down: without Redis, it still
    # shows what the database knows, and says Redis did not answer.
    try:
        if user.has_perm("journeys.view_enrollment") or may_manage_queues:
            board.scheduler = Lag(scheduler_last_pass(), now, SCHEDULER_SILENT_AFTER)
        if may_manage_queues:
            board.queues = _queues()
            board.workers_total, board.workers = _workers()
    except redis.RedisError as exc:
        board.scheduler, board.queues, board.workers = None, [], None
        board.redis_error = f"{type(exc).__name__}: {exc}"
    return board


def _changelist(name: str, **query) -> str:
    return f"{reverse(f'admin:{name}_changelist')}?{urlencode(query)}"


def _failed_enrollments_url(journey_id: int) -> str:
    return _changelist(
        "journeys_enrollment", journey__id__exact=journey_id, state__exact=Enrollment.State.FAILED
    )


def _queues() -> list[QueueHealth]:
    """Each rq queue's waiting jobs and failed jobs (two Redis reads each)."""
    health = []
    for index, name in enumerate(sorted(settings.RQ_QUEUES)):
        queue = django_rq.get_queue(name, connection=redis_client())
        health.append(
            QueueHealth(
                name=name,
                queued=queue.count,
                failed=queue.failed_job_registry.count,
                failed_url=reverse("admin:django_rq_failed_jobs", args=[index]),
                queue_url=reverse("admin:django_rq_jobs", args=[index]),
            )
        )
    return health


def _workers() -> tuple[int, list[Worker]]:
    """How many rq workers are alive, and the first few by name: rq forgets a
    worker whose heartbeat stopped."""
    workers = Worker.all(connection=redis_client())
    return len(workers), sorted(workers, key=lambda worker: worker.name)[:WORKERS_SHOWN]
