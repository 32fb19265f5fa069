"""Changing where contacts are while a journey is live."""

from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from journeys.models import Enrollment, Journey, JourneyTrigger, Step, TriggerMembership
from journeys.services.validation import journey_problems


def step_open_enrollment_counts(*, step_ids) -> dict:
    """How many contacts are on (waiting at, or about to run) each step."""
    rows = (
        Enrollment.objects.filter(current_step_id__in=step_ids, state__in=Enrollment.OPEN_STATES)
        .values("current_step_id")
        .annotate(n=Count("pk"))
    )
    return {row["current_step_id"]: row["n"] for row in rows}


def enrollments_exit(*, enrollments, reason: str, kind: str) -> int:
    """Take open enrollments out of their journey now, for `reason` (words)
    of `kind` (an Enrollment.ExitKind). Returns how many left.

    Clearing the lease stops a worker that holds one of them at its next
    transition, so the exit cannot be overwritten.
    """
    now = timezone.now()
    with transaction.atomic():
        return enrollments.filter(state__in=Enrollment.OPEN_STATES).update(
            state=Enrollment.State.EXITED,
            exit_reason=reason[:255],
            exit_kind=kind,
            finished_at=now,
            next_run_at=None,
            current_step=None,
            locked_until=None,
            lease_token=None,
        )


class MoveError(ValueError):
    pass


def enrollments_move(*, enrollments, to_step: Step) -> int:
    """Move open enrollments of `to_step`'s journey onto `to_step`, to run it now.

    Their step counter moves on, so a send step they are moved back to sends
    again rather than finding the earlier message.
    """
    if enrollments.exclude(journey_id=to_step.journey_id).exists():
        raise MoveError("Contacts can only be moved to a step of their own journey.")
    with transaction.atomic():
        return enrollments.filter(state__in=Enrollment.OPEN_STATES).update(
            state=Enrollment.State.ACTIVE,
            current_step=to_step,
            sequence=F("sequence") + 1,
            attempts=0,
            next_run_at=timezone.now(),
            locked_until=None,
            lease_token=None,
        )


class JourneyStateError(ValueError):
    pass


ARCHIVED_EXIT_REASON = "The journey was archived."


def journey_set_state(*, journey: Journey, state: str, actor=None) -> Journey:
    """Move a journey to draft, live, paused or archived.

    Going live needs at least one entry trigger, each complete, and at
    least one step. Pausing keeps
    contacts where they are (the scheduler skips paused journeys) and takes no
    new entries; going live again resumes them. Archiving takes every contact
    still in the journey out of it (exited, "The journey was archived."), in
    the same transaction: an archived journey strands no one. Going live
    (again), schedules and dates in attributes count from now, and segment
    entries from the segment as it is now: nothing missed meanwhile fires late.
    """
    if state not in Journey.State.values:
        raise JourneyStateError(f"Unknown journey state {state!r}.")
    if state == Journey.State.LIVE:
        if problems := journey_trigger_problems(journey=journey):
            raise JourneyStateError(" ".join(problems))
        if problems := journey_problems(journey=journey):
            raise JourneyStateError(" ".join(problems))
    with transaction.atomic():
        Journey.objects.filter(pk=journey.pk).update(
            state=state, modified_by=actor, updated_at=timezone.now()
        )
        if state == Journey.State.LIVE and journey.state != Journey.State.LIVE:
            _triggers_start_from(journey=journey, now=timezone.now())
        if state == Journey.State.ARCHIVED:
            enrollments_exit(
                enrollments=Enrollment.objects.filter(journey=journey),
                reason=ARCHIVED_EXIT_REASON,
                kind=Enrollment.ExitKind.ARCHIVED,
            )
    journey.state = state
    journey.modified_by = actor
    return journey


def _triggers_start_from(*, journey: Journey, now):
    """Going live (again), scheduled triggers count from now: runs and dates
    missed while the journey was a draft or paused are not fired late, and a
    segment entry notes afresh who is in the segment (TriggerMembership)."""
    triggers = JourneyTrigger.objects.filter(journey=journey)
    triggers.filter(
        kind__in=[JourneyTrigger.Kind.SCHEDULE, JourneyTrigger.Kind.DATE_ATTRIBUTE]
    ).update(fired_until=now)
    segment_entries = triggers.filter(kind=JourneyTrigger.Kind.SEGMENT_ENTRY)
    TriggerMembership.objects.filter(trigger__in=segment_entries).delete()
    segment_entries.update(fired_until=None)


def journey_trigger_problems(*, journey: Journey) -> list[str]:
    """What keeps the journey's entry triggers (and audience) from working."""
    from django.core.exceptions import ValidationError

    triggers = list(journey.triggers.all())
    if not triggers:
        return [f"“{journey}” has no entry trigger: add one before going live."]
    problems = []
    for trigger in [journey, *triggers]:
        try:
            trigger.full_clean(validate_unique=False)
        except ValidationError as exc:
            what = "The journey" if trigger is journey else f"Its trigger “{trigger.summary}”"
            details = " ".join(" ".join(messages) for messages in exc.message_dict.values())
            problems.append(f"{what}: {details}")
    return problems


# Trigger kinds two journeys can share, and the fields that make them the same.
_SHARED_BY = {
    JourneyTrigger.Kind.EVENT: "event_name",
    JourneyTrigger.Kind.LIST_JOIN: "contact_list_id",
    JourneyTrigger.Kind.SEGMENT_ENTRY: "segment_id",
}


def journeys_sharing_trigger(*, journey: Journey) -> list[Journey]:
    """The other live journeys that start on one of the same triggers as
    `journey` (the same event, list join or segment entry): a contact who
    sets it off enters each of them (and may get each one's messages). A
    warning for whoever takes `journey` live, not a refusal."""
    same = Q(pk__in=[])
    for trigger in journey.triggers.filter(kind__in=list(_SHARED_BY)):
        field = _SHARED_BY[trigger.kind]
        if value := getattr(trigger, field):
            same |= Q(kind=trigger.kind, **{field: value})
    others = JourneyTrigger.objects.filter(same, journey__state=Journey.State.LIVE).exclude(
        journey=journey
    )
    return list(Journey.objects.filter(pk__in=others.values("journey_id")).order_by("name"))


def journeys_open_enrollment_counts(*, journey_ids) -> dict:
    """How many contacts are in each journey now (active or waiting)."""
    open_enrollments = Enrollment.objects.filter(state__in=Enrollment.OPEN_STATES)
    rows = (
        open_enrollments.filter(journey_id__in=list(journey_ids))
        .values("journey_id")
        .annotate(n=Count("pk"))
    )
    return {row["journey_id"]: row["n"] for row in rows}
