"""Contacts entering journeys, and leaving them on exit events."""

from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from contacts.models import Contact, ContactList, Event, ListMembership
from contacts.redis import default_queue
from contacts.services import contact_find
from journeys.models import Enrollment, Journey, Step, StepRun


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


def journeys_enroll_contacts(*, journey: Journey, entries, now=None) -> set:
    """Enroll many contacts in one journey at once, each with its trigger
    data, as the journey's re-entry policy allows: one INSERT … SELECT for
    them all. `entries` are (contact id, trigger data) pairs. Returns the ids
    of the contacts who entered (the others are, or have been, on it)."""
    entries = list(entries)
    first_step = _first_step(journey.pk)
    if first_step is None or not entries:
        return set()
    now = now or timezone.now()
    data_field = Enrollment._meta.get_field("trigger_data")
    source = (
        f"FROM (VALUES {', '.join(['(%s::bigint, %s::jsonb)'] * len(entries))}) "
        "AS m(contact_id, data) WHERE true"
    )
    params = []
    for contact_id, data in entries:
        params += [contact_id, data_field.get_db_prep_value(data or {}, connection)]
    return set(
        _enroll_from(journey, source, params, first_step, now, data_column="m.data", returning=True)
    )


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
    event = Event._meta.db_table
    ids = ", ".join(["%s"] * len(event_ids))
    source = f"""
        FROM {event} m
        WHERE m.id IN ({ids}) AND m.name = %s
          AND m.id = (SELECT min(f.id) FROM {event} f
                      WHERE f.id IN ({ids}) AND f.name = m.name AND f.contact_id = m.contact_id)
    """
    source_params = [*event_ids, journey.trigger_event_name, *event_ids]
    return _enroll_from(journey, source, source_params, first_step, now, data_column="m.data")


# --- Entry through the API: POST /api/workflows/triggerWorkflow ---------------

# Members enrolled per statement when a whole list enters a journey: large
# enough that a list of a million takes a few hundred statements, small
# enough that no single statement holds locks for long.
LIST_ENTRY_CHUNK = 5_000
LIST_ENTRY_TIMEOUT = 60 * 60  # seconds


class TriggerError(ValueError):
    """A trigger request that names something missing or not able to start."""


@dataclass(frozen=True)
class Triggered:
    """What a trigger did: one contact enrolled (or not, by the re-entry
    policy), or a list's entry handed to a worker."""

    journey: Journey
    enrollment: Enrollment | None = None
    list_id: int | None = None

    @property
    def queued(self) -> bool:
        return self.list_id is not None


def journey_trigger(
    *,
    journey_id: int,
    email: str | None = None,
    user_id: str | None = None,
    list_id: int | None = None,
    data: dict | None = None,
) -> Triggered:
    """Start a live journey for one contact now, or for every member of a list soon.

    One contact, named by email or user id, must already exist (Iterable
    creates no user on a trigger). A list enters asynchronously: one rq job,
    enqueued after this transaction commits, enrolls its members set-based
    (journeys_enroll_list). `data` becomes each enrollment's trigger data.
    """
    journey = Journey.objects.filter(pk=journey_id).first()
    if journey is None:
        raise TriggerError(f"No journey with id {journey_id}.")
    if journey.state != Journey.State.LIVE:
        raise TriggerError(
            f"Journey {journey_id} is {journey.get_state_display().lower()}: "
            "only a live journey can be triggered."
        )
    data = data or {}
    if list_id is not None:
        if not ContactList.objects.filter(pk=list_id).exists():
            raise TriggerError(f"No list with id {list_id}.")
        transaction.on_commit(
            lambda: _enqueue_list_entry(journey_id=journey.pk, list_id=list_id, data=data)
        )
        return Triggered(journey=journey, list_id=list_id)
    contact = contact_find(email=email, user_id=user_id)
    if contact is None:
        raise TriggerError("No user with that email or userId.")
    enrollment = journeys_enroll_contact(journey=journey, contact=contact, trigger_data=data)
    return Triggered(journey=journey, enrollment=enrollment)


def _enqueue_list_entry(*, journey_id, list_id, data):
    from journeys.tasks import journeys_enroll_list_task

    default_queue().enqueue(
        journeys_enroll_list_task,
        journey_id=journey_id,
        list_id=list_id,
        trigger_data=data,
        # A list of millions takes hundreds of chunks: more than rq's default 3 minutes.
        job_timeout=LIST_ENTRY_TIMEOUT,
    )


def journeys_enroll_list(
    *, journey_id: int, list_id: int, trigger_data=None, chunk_size=None, now=None
) -> int:
    """Enroll every member of a list in a live journey, as its re-entry policy
    allows; returns how many entered.

    Set-based and chunked by contact id: per chunk one SELECT finds the
    chunk's last member and one INSERT … SELECT enrolls the chunk, each in its
    own transaction, so the statement count grows with the list's size
    divided by the chunk, never with one statement per contact. Running it
    twice is harmless: whoever is already on the journey is left alone.
    A journey that stopped being live before the job ran enrolls no one.
    """
    journey = Journey.objects.filter(pk=journey_id, state=Journey.State.LIVE).first()
    if journey is None:
        return 0
    first_step = _first_step(journey.pk)
    if first_step is None:
        return 0
    now = now or timezone.now()
    chunk_size = chunk_size or LIST_ENTRY_CHUNK
    data = Enrollment._meta.get_field("trigger_data").get_db_prep_value(
        trigger_data or {}, connection
    )
    membership = ListMembership.objects.filter(contact_list_id=list_id)
    entered, after = 0, 0
    while True:
        # The chunk's last member, or None when fewer than a chunk remain.
        upto = next(
            iter(
                membership.filter(contact_id__gt=after)
                .order_by("contact_id")
                .values_list("contact_id", flat=True)[chunk_size - 1 : chunk_size]
            ),
            None,
        )
        entered += _enroll_members(journey, list_id, after, upto, first_step, data, now)
        if upto is None:
            return entered
        after = upto


def _enroll_members(journey, list_id, after, upto, first_step, data, now) -> int:
    """One INSERT … SELECT: the list's members with after < contact id <= upto
    (no upper bound when upto is None) enter the journey."""
    member = ListMembership._meta.db_table
    bound = "" if upto is None else "AND m.contact_id <= %s"
    source = f"""
        FROM {member} m
        WHERE m.contact_list_id = %s AND m.contact_id > %s {bound}
    """
    source_params = [list_id, after, *([] if upto is None else [upto])]
    return _enroll_from(
        journey, source, source_params, first_step, now, data=data, contact_range=(after, upto)
    )


def _enroll_from(
    journey, source, source_params, first_step, now, *, data=None, data_column=None,
    returning=False, contact_range=None,
):  # fmt: skip
    """INSERT … SELECT: the contacts `source` (a FROM … WHERE over rows `m`
    with a contact_id) names enter the journey, but for those its re-entry
    policy keeps out. Their trigger data is `data` (prepared for the
    database), or the source's `data_column`. One statement: atomic alone.
    Returns how many entered (with `returning`, the ids of the contacts
    who did). `contact_range` (after, upto or None) bounds the check for a
    passage before to the source's contacts, so that a chunk compares with
    the journey's enrollments of its own contacts, not with all of them: the
    check otherwise grows with every chunk already enrolled."""
    enrollment = Enrollment._meta.db_table
    open_states = ", ".join(["%s"] * len(Enrollment.OPEN_STATES))
    before = f"SELECT 1 FROM {enrollment} x WHERE x.journey_id = %s AND x.contact_id = m.contact_id"
    before_params = [journey.pk]
    if journey.reentry != Journey.Reentry.NEVER:  # only an open passage keeps them out
        before += f" AND x.state IN ({open_states})"
        before_params += list(Enrollment.OPEN_STATES)
    if contact_range is not None:
        after, upto = contact_range
        before += " AND x.contact_id > %s"
        before_params.append(after)
        if upto is not None:
            before += " AND x.contact_id <= %s"
            before_params.append(upto)
    # Table names come from the models; every value is a parameter.
    sql = f"""
        INSERT INTO {enrollment}
            (journey_id, contact_id, state, current_step_id, sequence, attempts, next_run_at,
             wait_event_name, trigger_data, entered_at, exit_reason, last_error)
        SELECT %s, m.contact_id, %s, %s, 0, 0, %s, '', {data_column or "%s"}, %s, '', ''
        {source}
          AND NOT EXISTS ({before})
        ON CONFLICT DO NOTHING
        {"RETURNING contact_id" if returning else ""}
    """
    params = [
        journey.pk, Enrollment.State.ACTIVE, first_step, now,
        *([] if data_column else [data]), now, *source_params, *before_params,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            return [row[0] for row in cursor.fetchall()]
        return cursor.rowcount


# --- Contacts joining a list (contacts.signals.list_members_joined) -------------

LIST_JOIN_CHUNK = 1000


def journeys_handle_list_joins(*, contact_list_id: int, contact_ids, now=None) -> int:
    """Contacts who just joined a list enter every live journey that starts
    when a contact joins it, as each journey's re-entry policy allows.
    Set-based: one INSERT … SELECT per journey and thousand contacts.
    Returns how many entered."""
    journeys = list(
        Journey.objects.filter(
            state=Journey.State.LIVE,
            trigger_type=Journey.Trigger.LIST_JOIN,
            trigger_list_id=contact_list_id,
        )
    )
    contact_ids = sorted(set(contact_ids))
    if not journeys or not contact_ids:
        return 0
    now = now or timezone.now()
    data = Enrollment._meta.get_field("trigger_data").get_db_prep_value(
        {"listId": contact_list_id}, connection
    )
    contact = Contact._meta.db_table
    entered = 0
    for journey in journeys:
        first_step = _first_step(journey.pk)
        if first_step is None:
            continue
        for start in range(0, len(contact_ids), LIST_JOIN_CHUNK):
            chunk = contact_ids[start : start + LIST_JOIN_CHUNK]
            placeholders = ", ".join(["%s"] * len(chunk))
            source = (
                f"FROM (SELECT id AS contact_id FROM {contact} WHERE id IN ({placeholders})) m "
                "WHERE true"
            )
            entered += _enroll_from(journey, source, chunk, first_step, now, data=data)
    return entered


# --- A contact forgotten or deleted (contacts.signals.contact_forgetting) -------


def journeys_erase_contact(*, contact_id: int, now=None) -> int:
    """End a forgotten contact's open passages and erase the data they hold
    (the triggering event's data, errors that may quote an address); the
    passages and step runs stay, anonymous, for journey metrics. Returns how
    many passages were ended.

    Clearing the lease also stops a worker that is advancing one of them
    right now: its next transition finds the lease gone.
    """
    now = now or timezone.now()
    passages = Enrollment.objects.filter(contact_id=contact_id)
    ended = passages.filter(state__in=Enrollment.OPEN_STATES).update(
        state=Enrollment.State.EXITED,
        exit_reason="contact forgotten",
        finished_at=now,
        next_run_at=None,
        current_step=None,
        wait_event_name="",
        wait_timeout_at=None,
        locked_until=None,
        lease_token=None,
    )
    passages.update(trigger_data={}, last_error="")
    StepRun.objects.filter(enrollment__contact_id=contact_id).exclude(error="").update(error="")
    return ended
