"""Contacts entering journeys, and leaving them on exit events."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from journeys.models import Enrollment, Journey, Step


def _first_step(journey_id):
    return (
        Step.objects.filter(journey_id=journey_id)
        .order_by("position", "id")
        .values_list("pk", flat=True)
        .first()
    )


def journeys_enroll_contact(
    *, journey: Journey, contact, trigger_data=None, now=None
) -> Enrollment | None:
    """Enroll one contact if the journey's re-entry policy allows it.

    Returns the new enrollment, or None when the contact is already on the
    journey (or has been, under the "never" policy). Concurrent calls cannot
    both enroll: a partial unique index allows one open enrollment per
    contact and journey.
    """
    now = now or timezone.now()
    previous = Enrollment.objects.filter(journey=journey, contact=contact)
    if journey.reentry == Journey.Reentry.NEVER:
        if previous.exists():
            return None
    elif previous.filter(state__in=Enrollment.OPEN_STATES).exists():
        return None
    try:
        with transaction.atomic():
            return Enrollment.objects.create(
                journey=journey,
                contact=contact,
                current_step_id=_first_step(journey.pk),
                state=Enrollment.State.ACTIVE,
                next_run_at=now,
                entered_at=now,
                trigger_data=trigger_data or {},
            )
    except IntegrityError:  # a concurrent entry won the race
        return None


def journeys_handle_event(*, event) -> dict:
    """Apply a tracked event to journeys: enter, exit, goal.

    Runs inside the transaction that stored the event, so the event and its
    consequences commit together. Workers pick new enrollments up from the
    database (next_run_at = now) on the scheduler's next pass.
    """
    now = timezone.now()
    entered = exited = goals = 0
    with transaction.atomic(savepoint=False):
        open_here = Enrollment.objects.filter(
            contact_id=event.contact_id, state__in=Enrollment.OPEN_STATES
        )
        goals = open_here.filter(
            journey__goal_event_name=event.name, goal_reached_at__isnull=True
        ).update(goal_reached_at=now)
        # Clearing the lease also stops a worker that is advancing one of
        # these right now: its next transition finds the lease gone.
        exited = open_here.filter(journey__exit_event_name=event.name).update(
            state=Enrollment.State.EXITED,
            exit_reason=f"exit event: {event.name}",
            finished_at=now,
            next_run_at=None,
            current_step=None,
            locked_until=None,
            lease_token=None,
        )
        for journey in Journey.objects.filter(
            state=Journey.State.LIVE,
            trigger_type=Journey.Trigger.EVENT,
            trigger_event_name=event.name,
        ):
            if journeys_enroll_contact(
                journey=journey, contact=event.contact, trigger_data=event.data, now=now
            ):
                entered += 1
    return {"entered": entered, "exited": exited, "goals": goals}
