"""Contacts entering journeys, and leaving them on exit events."""

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from contacts.models import Event
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


def journeys_handle_events(*, events) -> dict:
    """Apply a batch of new events to journeys: goals, exits, then entries.

    Set-based: a few statements for the whole batch, whatever its size — one
    UPDATE for goals, one for exits, one INSERT … SELECT per live journey that
    one of the events starts. Runs in the transaction that marks the events
    dispatched (contacts.services.events_dispatch), so the events and their
    consequences commit together. Workers pick new enrollments up from the
    database (next_run_at = now) on the scheduler's next pass.
    """
    if not events:
        return {"entered": 0, "exited": 0, "goals": 0}
    now = timezone.now()
    event_ids = [e.pk for e in events]
    contact_ids = {e.contact_id for e in events}
    names = {e.name for e in events}
    batch = Event.objects.filter(pk__in=event_ids)
    with transaction.atomic(savepoint=False):
        open_here = Enrollment.objects.filter(
            contact_id__in=contact_ids, state__in=Enrollment.OPEN_STATES
        )
        goals = (
            open_here.filter(goal_reached_at__isnull=True, journey__goal_event_name__in=names)
            .filter(_in_batch(batch, "journey__goal_event_name"))
            .update(goal_reached_at=now)
        )
        # Clearing the lease also stops a worker that is advancing one of
        # these right now: its next transition finds the lease gone.
        exited = 0
        for journey_id, exit_event in Journey.objects.filter(exit_event_name__in=names).values_list(
            "pk", "exit_event_name"
        ):
            exited += (
                open_here.filter(journey_id=journey_id)
                .filter(Exists(batch.filter(contact_id=OuterRef("contact_id"), name=exit_event)))
                .update(
                    state=Enrollment.State.EXITED,
                    exit_reason=f"exit event: {exit_event}"[:255],
                    finished_at=now,
                    next_run_at=None,
                    current_step=None,
                    locked_until=None,
                    lease_token=None,
                )
            )
        entered = 0
        for journey in Journey.objects.filter(
            state=Journey.State.LIVE,
            trigger_type=Journey.Trigger.EVENT,
            trigger_event_name__in=names,
        ):
            entered += _enroll_from_events(journey, event_ids, now)
    return {"entered": entered, "exited": exited, "goals": goals}


def _in_batch(batch, journey_event_field):
    """The enrollment's contact did, in this batch, the event its journey names in the field."""
    return Exists(
        batch.filter(contact_id=OuterRef("contact_id"), name=OuterRef(journey_event_field))
    )


def _enroll_from_events(journey, event_ids, now) -> int:
    """One INSERT … SELECT: each contact with one of `event_ids` named by the
    journey's trigger enters, once, as its re-entry policy allows; the first
    such event of the batch is the trigger."""
    first_step = _first_step(journey.pk)
    if first_step is None:
        return 0
    enrollment = Enrollment._meta.db_table
    event = Event._meta.db_table
    ids = ", ".join(["%s"] * len(event_ids))
    open_states = ", ".join(["%s"] * len(Enrollment.OPEN_STATES))
    before = f"SELECT 1 FROM {enrollment} x WHERE x.journey_id = %s AND x.contact_id = e.contact_id"
    before_params = [journey.pk]
    if journey.reentry != Journey.Reentry.NEVER:  # only an open passage keeps them out
        before += f" AND x.state IN ({open_states})"
        before_params += list(Enrollment.OPEN_STATES)
    # Table names come from the models; every value is a parameter.
    sql = f"""
        INSERT INTO {enrollment}
            (journey_id, contact_id, state, current_step_id, sequence, attempts, next_run_at,
             wait_event_name, trigger_data, entered_at, exit_reason, last_error)
        SELECT %s, e.contact_id, %s, %s, 0, 0, %s, '', e.data, %s, '', ''
        FROM {event} e
        WHERE e.id IN ({ids}) AND e.name = %s
          AND e.id = (SELECT min(f.id) FROM {event} f
                      WHERE f.id IN ({ids}) AND f.name = e.name AND f.contact_id = e.contact_id)
          AND NOT EXISTS ({before})
        ON CONFLICT DO NOTHING
    """
    params = [
        journey.pk, Enrollment.State.ACTIVE, first_step, now, now,
        *event_ids, journey.trigger_event_name, *event_ids, *before_params,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
