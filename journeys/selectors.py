"""Read paths for the journey's page (what each step holds and has sent), and
the engine's health for the admin's dashboard."""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.utils import timezone

from contacts.redis import redis_client
from journeys.models import Enrollment, Journey, StepRun
from journeys.models.journey import FOLDER_SEPARATOR, folder_parts


@dataclass(frozen=True)
class StepMetrics:
    waiting: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0

    def rate(self, count) -> str:
        return f"{count / self.sent:.0%}" if self.sent else "n/a"


def journey_step_metrics(*, journey, since, until) -> dict:
    """{step id: StepMetrics}: contacts on each step now, and for the
    messages each step sent between `since` and `until`, how many were sent,
    delivered, opened and clicked. Two grouped queries, whatever the size."""
    waiting = dict(
        Enrollment.objects.filter(journey=journey, state__in=Enrollment.OPEN_STATES)
        .exclude(current_step=None)
        .values_list("current_step_id")
        .annotate(n=Count("pk"))
    )
    runs = (
        StepRun.objects.filter(
            step__journey=journey,
            message__isnull=False,
            started_at__gte=since,
            started_at__lt=until,
        )
        .values("step_id")
        .annotate(
            **{
                name: Count(
                    "message", filter=Q(**{f"message__{field}__isnull": False}), distinct=True
                )
                for name, field in (
                    ("sent", "sent_at"),
                    ("delivered", "delivered_at"),
                    ("opened", "opened_at"),
                    ("clicked", "clicked_at"),
                )
            }
        )
    )
    sent = {row.pop("step_id"): row for row in runs}
    return {
        step_id: StepMetrics(waiting=waiting.get(step_id, 0), **sent.get(step_id, {}))
        for step_id in {*waiting, *sent}
    }


# --- the journey list ---------------------------------------------------------------


@dataclass(frozen=True)
class JourneyFigures:
    inside: int = 0
    sent: int = 0
    conversions: int = 0


def journeys_page_figures(*, journey_ids) -> dict:
    """{journey id: JourneyFigures} for the journeys on one page of the list:
    contacts inside now, messages sent, conversions (outside the holdout).

    Three grouped queries bounded to `journey_ids`, whatever their number;
    still a count over those journeys' enrollments and step runs, which grows
    with their traffic. To be replaced by journeys_list_figures(journey_ids=…),
    which reads maintained aggregates instead.
    """
    journey_ids = list(journey_ids)
    if not journey_ids:
        return {}
    enrollments = Enrollment.objects.filter(journey_id__in=journey_ids).order_by()
    inside = dict(
        enrollments.filter(state__in=Enrollment.OPEN_STATES)
        .values_list("journey_id")
        .annotate(n=Count("pk"))
    )
    conversions = dict(
        enrollments.filter(goal_reached_at__isnull=False, holdout=False)
        .values_list("journey_id")
        .annotate(n=Count("pk"))
    )
    sent = dict(
        StepRun.objects.filter(step__journey_id__in=journey_ids, message__sent_at__isnull=False)
        .order_by()
        .values_list("step__journey_id")
        .annotate(n=Count("message_id", distinct=True))
    )
    return {
        pk: JourneyFigures(
            inside=inside.get(pk, 0), sent=sent.get(pk, 0), conversions=conversions.get(pk, 0)
        )
        for pk in journey_ids
    }


@dataclass(frozen=True)
class Folder:
    """A folder of the journey list: its full path ("Onboarding/Trials"), its
    own name ("Trials"), how deep it sits, and the journeys in it and below."""

    path: str
    name: str
    depth: int
    count: int


def journey_folder_tree() -> list[Folder]:
    """Every folder, parents before their children, each with how many
    journeys it holds, its subfolders' included. One grouped query over
    journeys (a small table: one row per journey, not per contact)."""
    counts = {}
    for folder, n in Journey.objects.order_by().values_list("folder").annotate(n=Count("pk")):
        parts = folder_parts(folder)
        for depth in range(1, len(parts) + 1):
            path = FOLDER_SEPARATOR.join(parts[:depth])
            counts[path] = counts.get(path, 0) + n
    return [
        Folder(path=path, name=folder_parts(path)[-1], depth=len(folder_parts(path)) - 1, count=n)
        for path, n in sorted(counts.items(), key=lambda item: folder_parts(item[0]))
    ]


class CappedCount(Subquery):
    """COUNT(*) of a subquery's rows, the subquery sliced to a cap: counting
    stops at the cap however many rows match."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) AS capped)"
    output_field = IntegerField()


def failed_enrollments_by_journey(*, cap: int, limit: int) -> list[Journey]:
    """Journeys (not archived) with failed enrollments, most first, each with
    `failed`: how many, counted up to `cap`. At most `limit` journeys.

    One query: per journey, a capped count through the (journey, state)
    index, so neither the enrollments table nor a journey's whole history is read.
    """
    failed = Enrollment.objects.filter(
        journey_id=OuterRef("pk"), state=Enrollment.State.FAILED
    ).values("pk")[:cap]
    return list(
        Journey.objects.exclude(state=Journey.State.ARCHIVED)
        .annotate(failed=CappedCount(failed))
        .filter(failed__gt=0)
        .order_by("-failed", "name")
        .only("pk", "name")[:limit]
    )


def oldest_overdue_enrollment(*, now: datetime | None = None) -> datetime | None:
    """When the longest-overdue enrollment of a live journey was due, or None
    when none is due. Walks the partial index enrollment_due from its oldest
    end and stops at the first enrollment of a live journey."""
    now = now or timezone.now()
    return (
        Enrollment.objects.filter(
            state__in=Enrollment.OPEN_STATES,
            next_run_at__lte=now,
            journey__state=Journey.State.LIVE,
        )
        .order_by("next_run_at")
        .values_list("next_run_at", flat=True)
        .first()
    )


# Redis key holding the time of the scheduler's last pass (Unix seconds).
SCHEDULER_PASS_KEY = "waymark:scheduler:last_pass"


def scheduler_last_pass() -> datetime | None:
    """When a scheduler last finished a pass (any of them, if several run),
    or None if none has since Redis was emptied."""
    value = redis_client().get(SCHEDULER_PASS_KEY)
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), tz=UTC)
