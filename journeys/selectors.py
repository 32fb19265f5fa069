"""Read paths for the journey's page (what each step holds and has sent), the
journey list's figures, and the engine's health for the admin's dashboard.
A journey's analytics are in journeys.analytics."""

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, IntegerField, OuterRef, Subquery, Sum
from django.utils import timezone

from contacts.redis import redis_client
from journeys.models import Enrollment, Journey, JourneyTally, Step
from journeys.models.journey import FOLDER_SEPARATOR, folder_parts
from messaging.models import Message, MessageTally


@dataclass(frozen=True)
class StepMetrics:
    waiting: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0

    def rate(self, count) -> str:
        return f"{count / self.sent:.0%}" if self.sent else "n/a"


def tally_days(since, until) -> tuple[date, date]:
    """The UTC days [first, last) a period covers, for reading tallies: a
    date is its day; a datetime counts its day, and an end at midnight ends
    the day before."""

    def day(value, *, end):
        if not isinstance(value, datetime):
            return value + timedelta(days=1) if end else value
        value = value.astimezone(UTC)
        midnight = value.hour == value.minute == value.second == value.microsecond == 0
        return value.date() + timedelta(days=1) if end and not midnight else value.date()

    return day(since, end=False), day(until, end=True)


def _journey_messages(journey_ids):
    """MessageTally rows of messages the journeys' steps sent."""
    steps = Step.objects.non_polymorphic().filter(journey_id__in=journey_ids).values("pk")
    return MessageTally.objects.filter(
        origin=Message.Origin.JOURNEY, origin_step_id__in=Subquery(steps)
    ).order_by()


def journey_step_metrics(*, journey, since, until) -> dict:
    """{step id: StepMetrics}: contacts on each step now, and how many
    messages each step sent, and were delivered, opened and clicked, on the
    days from `since` to `until` (UTC days; an open counts on the day it
    happened). Two grouped queries, whatever the size: the contacts on each
    step through the enrollments' (journey, state) index, the messages from
    the maintained tallies (MessageTally), not from the messages."""
    waiting = dict(
        Enrollment.objects.filter(journey=journey, state__in=Enrollment.OPEN_STATES)
        .exclude(current_step=None)
        .values_list("current_step_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    first, last = tally_days(since, until)
    sent = {}
    rows = (
        _journey_messages([journey.pk])
        .filter(day__gte=first, day__lt=last, metric__in=STEP_MESSAGE_METRICS)
        .values_list("origin_step_id", "metric")
        .annotate(n=Sum("n"))
    )
    for step_id, metric, n in rows:
        sent.setdefault(step_id, {})[metric] = n
    return {
        step_id: StepMetrics(waiting=waiting.get(step_id, 0), **sent.get(step_id, {}))
        for step_id in {*waiting, *sent}
    }


STEP_MESSAGE_METRICS = ("sent", "delivered", "opened", "clicked")


# --- the journey list ---------------------------------------------------------------


@dataclass(frozen=True)
class JourneyFigures:
    inside: int = 0
    sent: int = 0
    conversions: int = 0


def journeys_list_figures(*, journey_ids) -> dict:
    """{journey id: JourneyFigures} for the journeys on one page of the list:
    contacts inside now, messages sent, conversions (outside the holdout), all time.

    Four queries bounded to `journey_ids`, whatever their number: contacts
    inside through the enrollments' (journey, state) index (open enrollments
    only, not a journey's history); conversions and, per step of these
    journeys, messages sent from the maintained tallies (JourneyTally,
    MessageTally), whose rows grow with days and steps, not with traffic.
    """
    journey_ids = list(journey_ids)
    if not journey_ids:
        return {}
    inside = dict(
        Enrollment.objects.filter(journey_id__in=journey_ids, state__in=Enrollment.OPEN_STATES)
        .order_by()
        .values_list("journey_id")
        .annotate(n=Count("pk"))
    )
    conversions = dict(
        JourneyTally.objects.filter(journey_id__in=journey_ids, metric="converted")
        .order_by()
        .values_list("journey_id")
        .annotate(n=Sum("n"))
    )
    journey_of = dict(
        Step.objects.non_polymorphic()
        .filter(journey_id__in=journey_ids)
        .order_by()
        .values_list("pk", "journey_id")
    )
    sent = {}
    rows = (
        MessageTally.objects.filter(
            origin=Message.Origin.JOURNEY, origin_step_id__in=list(journey_of), metric="sent"
        )
        .order_by()
        .values_list("origin_step_id")
        .annotate(n=Sum("n"))
    )
    for step_id, n in rows:
        sent[journey_of[step_id]] = sent.get(journey_of[step_id], 0) + n
    return {
        pk: JourneyFigures(
            inside=inside.get(pk, 0), sent=sent.get(pk, 0), conversions=conversions.get(pk, 0)
        )
        for pk in journey_ids
    }


# --- a journey's analytics ----------------------------------------------------------


@dataclass(frozen=True)
class Lift:
    """The holdout test: conversion of contacts who went on at the journey's
    holdout step(s) (treatment) against those held out (control)."""

    treatment: int
    treatment_converted: int
    control: int
    control_converted: int

    @property
    def treatment_rate(self) -> float | None:
        return self.treatment_converted / self.treatment if self.treatment else None

    @property
    def control_rate(self) -> float | None:
        return self.control_converted / self.control if self.control else None

    @property
    def enough_data(self) -> bool:
        """Whether the normal approximation behind the z-test holds: at least
        five converted and five not converted in each group."""
        return all(
            converted >= 5 and total - converted >= 5
            for total, converted in (
                (self.treatment, self.treatment_converted),
                (self.control, self.control_converted),
            )
        )

    @property
    def lift(self) -> float | None:
        """Relative lift of the treatment's conversion rate over the control's."""
        if self.treatment_rate is None or not self.control_rate:
            return None
        return (self.treatment_rate - self.control_rate) / self.control_rate

    @property
    def z(self) -> float | None:
        """Two-proportion z statistic (pooled), None without enough data."""
        if not self.enough_data:
            return None
        pooled = (self.treatment_converted + self.control_converted) / (
            self.treatment + self.control
        )
        spread = math.sqrt(pooled * (1 - pooled) * (1 / self.treatment + 1 / self.control))
        return (self.treatment_rate - self.control_rate) / spread

    @property
    def confidence(self) -> float | None:
        """Two-sided confidence that the rates differ (1 - p-value)."""
        z = self.z
        return None if z is None else math.erf(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class DayFigures:
    day: date
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0


@dataclass(frozen=True)
class FunnelStep:
    step: Step
    kind: str
    reached: int


@dataclass(frozen=True)
class Branch:
    label: str
    entered: int
    converted: int

    @property
    def rate(self) -> float | None:
        return self.converted / self.entered if self.entered else None


@dataclass(frozen=True)
class BranchResults:
    step: Step
    kind: str
    branches: list


@dataclass(frozen=True)
class JourneyAnalytics:
    """A journey's figures for the UTC days `first` to `last` (both included):
    each counts what happened on those days (entries, ends, conversions,
    sends and opens on the day they happened)."""

    first: date
    last: date
    entered: int
    completed: int
    failed: int
    exits: dict
    converted: int
    holdout: int
    holdout_converted: int
    days: list
    funnel: list
    splits: list
    lift: Lift | None

    @property
    def exited(self) -> int:
        return sum(self.exits.values())

    @property
    def conversion_rate(self) -> float | None:
        """Conversions per contact who entered and was not held out."""
        outside = self.entered - self.holdout
        return self.converted / outside if outside > 0 else None

    @property
    def has_activity(self) -> bool:
        return bool(
            self.entered
            or self.completed
            or self.failed
            or self.exited
            or self.converted
            or self.holdout_converted
            or any(d.sent or d.delivered or d.opened or d.clicked for d in self.days)
            or any(f.reached for f in self.funnel)
        )


def journey_analytics(*, journey, since: date, until: date) -> JourneyAnalytics:
    """The analytics page's figures for the UTC days `since` to `until`, both
    included. Three queries whatever the number of days, steps and contacts:
    the journey's steps, its JourneyTally rows and its steps' MessageTally
    rows, each summed per metric (and step, or day) in SQL."""
    steps = list(Step.objects.non_polymorphic().filter(journey=journey).order_by("position", "pk"))
    kinds = {step.pk: _step_kind(step) for step in steps}
    end = until + timedelta(days=1)
    journey_rows = (
        JourneyTally.objects.filter(journey=journey, day__gte=since, day__lt=end)
        .order_by()
        .values_list("step_id", "metric")
        .annotate(n=Sum("n"))
    )
    overall, per_step = {}, {}
    for step_id, metric, n in journey_rows:
        if step_id is None:
            overall[metric] = overall.get(metric, 0) + n
        else:
            per_step.setdefault(step_id, {})[metric] = n
    message_rows = (
        _journey_messages([journey.pk])
        .filter(day__gte=since, day__lt=end, metric__in=STEP_MESSAGE_METRICS)
        .values_list("day", "metric")
        .annotate(n=Sum("n"))
    )
    by_day = {}
    for day, metric, n in message_rows:
        by_day.setdefault(day, {})[metric] = n
    days = [
        DayFigures(since + timedelta(days=i), **by_day.get(since + timedelta(days=i), {}))
        for i in range((end - since).days)
    ]
    funnel = [
        FunnelStep(step, kinds[step.pk], per_step.get(step.pk, {}).get("reached", 0))
        for step in steps
    ]
    splits = []
    for step in steps:
        metrics = per_step.get(step.pk, {})
        labels = sorted(m.removeprefix("branch:") for m in metrics if m.startswith("branch:"))
        if labels:
            branches = [
                Branch(
                    label, metrics[f"branch:{label}"], metrics.get(f"branch_converted:{label}", 0)
                )
                for label in labels
            ]
            splits.append(BranchResults(step, kinds[step.pk], branches))
    holdout_steps = [step.pk for step in steps if kinds[step.pk] == "holdout step"]
    lift = None
    if holdout_steps or overall.get("holdout"):
        treated = [per_step.get(pk, {}) for pk in holdout_steps]
        lift = Lift(
            treatment=sum(m.get("branch:treatment", 0) for m in treated),
            treatment_converted=sum(m.get("branch_converted:treatment", 0) for m in treated),
            control=overall.get("holdout", 0),
            control_converted=overall.get("holdout_converted", 0),
        )
    return JourneyAnalytics(
        first=since,
        last=until,
        entered=overall.get("entered", 0),
        completed=overall.get("completed", 0),
        failed=overall.get("failed", 0),
        exits={
            metric.removeprefix("exited:"): n
            for metric, n in sorted(overall.items())
            if metric.startswith("exited:") and n
        },
        converted=overall.get("converted", 0),
        holdout=overall.get("holdout", 0),
        holdout_converted=overall.get("holdout_converted", 0),
        days=days,
        funnel=funnel,
        splits=splits,
        lift=lift,
    )


def _step_kind(step) -> str:
    """The step's type in words ("holdout step"), from the content type cache."""
    model = ContentType.objects.get_for_id(step.polymorphic_ctype_id).model_class()
    return str(model._meta.verbose_name) if model else "step"


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
