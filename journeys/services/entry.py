"""Contacts entering journeys, and leaving them on exit events."""

from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Exists, Min, OuterRef, Q
from django.utils import timezone

from contacts.conditions import compile_conditions
from contacts.models import Contact, ContactList, Event, ListMembership
from contacts.redis import default_queue
from contacts.services import contact_find
from journeys.models import Enrollment, Journey, JourneyTrigger, Step, StepRun, Wakeup


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
    """Enroll one contact if the journey's audience and re-entry policy allow it.

    Returns the new enrollment, or None when the contact is kept out: already
    on the journey (or, by the policy, has been), or not in its audience.
    One INSERT … SELECT, the same as every other entry: concurrent calls
    cannot enroll more than the policy allows (a partial unique index allows
    one open enrollment per contact and journey unless the policy is
    "always").
    """
    now = now or timezone.now()
    first_step = _first_step(journey.pk)
    data = Enrollment._meta.get_field("trigger_data").get_db_prep_value(
        trigger_data or {}, connection
    )
    source = "FROM (SELECT %s AS contact_id) m WHERE true"
    ids = _enroll_from(journey, source, [contact.pk], first_step, now, data=data, returning="id")
    return Enrollment.objects.get(pk=ids[0]) if ids else None


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
    # A UNION of one-row SELECTs rather than VALUES: SQLite (the embedded
    # default) names no VALUES columns, and has no casts to give.
    cast = ("::bigint", "::jsonb") if connection.vendor == "postgresql" else ("", "")
    rows = [f"SELECT %s{cast[0]} AS contact_id, %s{cast[1]} AS data"]
    rows += [f"SELECT %s{cast[0]}, %s{cast[1]}"] * (len(entries) - 1)
    source = f"FROM ({' UNION ALL '.join(rows)}) m WHERE true"
    params = []
    for contact_id, data in entries:
        params += [contact_id, data_field.get_db_prep_value(data or {}, connection)]
    return set(
        _enroll_from(
            journey, source, params, first_step, now, data_column="m.data", returning="contact_id"
        )
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
        return {"entered": 0, "exited": 0, "goals": 0, "woken": 0}
    now = timezone.now()
    event_ids = [e.pk for e in events]
    contact_ids = {e.contact_id for e in events}
    names = {e.name for e in events}
    goal_journeys = list(
        Journey.objects.filter(goal_event_name__in=names).values_list("pk", "goal_window_days")
    )
    exit_journeys = list(
        Journey.objects.filter(exit_event_name__in=names).values_list("pk", "exit_event_name")
    )
    with transaction.atomic(savepoint=False):
        # Built only when a journey asks: an IN list of thousands costs to build.
        if goal_journeys or exit_journeys:
            batch = Event.objects.filter(pk__in=event_ids)
            open_here = Enrollment.objects.filter(
                contact_id__in=contact_ids, state__in=Enrollment.OPEN_STATES
            )
        goals = 0
        # A conversion is the goal event within the journey's conversion
        # window from entry, whether the contact is still in the journey, has
        # finished it, or was held out (the control group the lift compares).
        for journey_id, window in goal_journeys:
            goals += (
                Enrollment.objects.filter(
                    journey_id=journey_id,
                    contact_id__in=contact_ids,
                    goal_reached_at__isnull=True,
                    entered_at__gte=now - timedelta(days=window),
                )
                .filter(_in_batch(batch, "journey__goal_event_name"))
                .update(goal_reached_at=now)
            )
        # Clearing the lease also stops a worker that is advancing one of
        # these right now: its next transition finds the lease gone.
        exited = 0
        for journey_id, exit_event in exit_journeys:
            exited += (
                open_here.filter(journey_id=journey_id)
                .filter(Exists(batch.filter(contact_id=OuterRef("contact_id"), name=exit_event)))
                .update(
                    state=Enrollment.State.EXITED,
                    exit_reason=f"exit event: {exit_event}"[:255],
                    exit_kind=Enrollment.ExitKind.EXIT_EVENT,
                    finished_at=now,
                    next_run_at=None,
                    current_step=None,
                    locked_until=None,
                    lease_token=None,
                )
            )
        woken = _wake_waiting(event_ids, now)
        entered = 0
        for journey, triggers in _live_triggers(
            kind=JourneyTrigger.Kind.EVENT, event_name__in=names
        ).items():
            entered += _enroll_from_events(journey, triggers, event_ids, now)
    return {"entered": entered, "exited": exited, "goals": goals, "woken": woken}


# A Wakeup (enrollment, event) for each enrollment waiting for one of the
# events (PostgreSQL). LATERAL with OFFSET 0: one index probe per event,
# whatever the planner would think of joining a million waiting rows.
WAITING_FOR_EVENTS_SQL = f"""
    SELECT w.id, ev.id FROM {Event._meta.db_table} ev
    CROSS JOIN LATERAL (
        SELECT e.id FROM {Enrollment._meta.db_table} e
        WHERE e.contact_id = ev.contact_id AND e.state = %s
          AND e.wait_event_name <> '' AND e.wait_event_name = ev.name
          AND ev.received_at >= e.wait_since
          AND (e.wait_key = '' OR ev.data ->> e.wait_key = e.wait_value)
        OFFSET 0
    ) w
    WHERE ev.id = ANY(%s)
"""


def _wake_waiting(event_ids, now) -> int:
    """Wake every enrollment waiting for one of these events (same contact,
    same name, received since the wait began, holding the awaited value under
    the awaited key): one statement that notes a Wakeup for each; how many.

    The waiting enrollments of each event's contact are found through an
    index of waiting enrollments (contact, event name), never by scanning
    them, and the enrollments themselves are not written: the scheduler
    claims woken ones through their Wakeup, and the step checks the rest (its
    data filter) when it runs. An enrollment already woken keeps its first
    event.
    """
    wakeup = Wakeup._meta.db_table
    if connection.vendor == "postgresql":
        sql = f"INSERT INTO {wakeup} (enrollment_id, event_id, woken_at) "
        sql += f"SELECT w.*, %s FROM ({WAITING_FOR_EVENTS_SQL}) w "
        params = [now, Enrollment.State.WAITING, list(event_ids)]
    else:  # SQLite, the embedded default: the same join, left to its planner
        ids = ", ".join(["%s"] * len(event_ids))
        value = "CAST(json_extract(ev.data, '$.\"' || e.wait_key || '\"') AS TEXT)"
        sql = f"""
            INSERT INTO {wakeup} (enrollment_id, event_id, woken_at)
            SELECT e.id, ev.id, %s
            FROM {Event._meta.db_table} AS ev
            JOIN {Enrollment._meta.db_table} AS e ON e.contact_id = ev.contact_id
            WHERE ev.id IN ({ids})
              AND e.state = %s
              AND e.wait_event_name <> '' AND e.wait_event_name = ev.name
              AND ev.received_at >= e.wait_since
              AND (e.wait_key = '' OR {value} = e.wait_value)
        """
        params = [now, *event_ids, Enrollment.State.WAITING]
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} ORDER BY 2 ON CONFLICT (enrollment_id) DO NOTHING", params)
        return cursor.rowcount


def _in_batch(batch, journey_event_field):
    """The enrollment's contact did, in this batch, the event its journey names in the field."""
    return Exists(
        batch.filter(contact_id=OuterRef("contact_id"), name=OuterRef(journey_event_field))
    )


def _live_triggers(*args, **lookup) -> dict:
    """Live journeys with triggers matching the lookup: {journey: [its triggers]}."""
    found = {}
    for trigger in JourneyTrigger.objects.filter(
        *args, journey__state=Journey.State.LIVE, **lookup
    ).select_related("journey"):
        found.setdefault(trigger.journey, []).append(trigger)
    return found


def event_filter_q(trigger) -> Q:
    """The events a trigger takes: its name, and the values its filter asks of their data."""
    q = Q(name=trigger.event_name)
    for path, value in (trigger.event_filter or {}).items():
        q &= Q(**{"data__" + "__".join(path.split(".")): value})
    return q


def _enroll_from_events(journey, triggers, event_ids, now) -> int:
    """One INSERT … SELECT: each contact with one of `event_ids` that one of
    the journey's triggers takes enters, as its re-entry policy allows. The
    first such event of the batch is the trigger; under "always" each such
    event starts a passage of its own."""
    first_step = _first_step(journey.pk)
    if first_step is None:
        return 0
    taken = Q(pk__in=[])
    for trigger in triggers:
        taken |= event_filter_q(trigger)
    matching = Event.objects.filter(pk__in=event_ids).filter(taken).order_by()
    if not journey.parallel:
        matching = matching.values("contact_id").annotate(first=Min("pk")).values("first")
    else:
        matching = matching.values("pk")
    sql, params = matching.query.sql_with_params()
    source = f"FROM {Event._meta.db_table} m WHERE m.id IN ({sql})"
    return _enroll_from(journey, source, list(params), first_step, now, data_column="m.data")


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
    """Start a live journey that has an API trigger for one contact now, or
    for every member of a list soon.

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
    if not journey.triggers.filter(kind=JourneyTrigger.Kind.API).exists():
        raise TriggerError(
            f"Journey {journey_id} does not start from the API: give it an API trigger "
            "(“The API starts it”) to trigger it here."
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
    returning=None, contact_range=None,
):  # fmt: skip
    """INSERT … SELECT: the contacts `source` (a FROM … WHERE over rows `m`
    with a contact_id) names enter the journey, but for those outside its
    audience and those its re-entry policy keeps out. Their trigger data is
    `data` (prepared for the database), or the source's `data_column`. One
    statement: atomic alone. Returns how many entered (with `returning`,
    "id" or "contact_id", that column of the new enrollments).
    `contact_range` (after, upto or None) bounds the check for a passage
    before to the source's contacts, so that a chunk compares with the
    journey's enrollments of its own contacts, not with all of them: the
    check otherwise grows with every chunk already enrolled.

    The policies: "never" keeps out whoever has a passage; "after exit" and
    "once per period" whoever has an open one (the partial unique index
    one_open_enrollment_per_journey holds this under concurrency too), and
    "once per period" also whoever entered within the period; "always" keeps
    no one out, and its passages are marked parallel, outside that index.
    """
    if first_step is None:
        return [] if returning else 0
    enrollment = Enrollment._meta.db_table
    open_states = ", ".join(["%s"] * len(Enrollment.OPEN_STATES))
    before = f"SELECT 1 FROM {enrollment} x WHERE x.journey_id = %s AND x.contact_id = m.contact_id"
    before_params = [journey.pk]
    policy = Journey.Reentry
    if journey.reentry in (policy.AFTER_EXIT, policy.PERIOD):
        before += f" AND (x.state IN ({open_states})"
        before_params += list(Enrollment.OPEN_STATES)
        if journey.reentry == policy.PERIOD:
            before += " OR x.entered_at > %s"
            before_params.append(now - timedelta(days=journey.reentry_period_days or 0))
        before += ")"
    if contact_range is not None:
        after, upto = contact_range
        before += " AND x.contact_id > %s"
        before_params.append(after)
        if upto is not None:
            before += " AND x.contact_id <= %s"
            before_params.append(upto)
    keep_out = "" if journey.reentry == policy.ALWAYS else f"AND NOT EXISTS ({before})"
    if journey.reentry == policy.ALWAYS:
        before_params = []
    audience, audience_params = "", []
    if journey.audience:
        members = Contact.objects.filter(compile_conditions(journey.audience, now=now)).order_by()
        audience, audience_params = members.values("pk").query.sql_with_params()
        audience = f"AND m.contact_id IN ({audience})"
    # Table names come from the models; every value is a parameter.
    sql = f"""
        INSERT INTO {enrollment}
            (journey_id, contact_id, state, current_step_id, sequence, attempts, next_run_at,
             wait_event_name, trigger_data, entered_at, exit_reason, last_error, parallel)
        SELECT %s, m.contact_id, %s, %s, 0, 0, %s, '', {data_column or "%s"}, %s, '', '', %s
        {source}
          {keep_out}
          {audience}
        ON CONFLICT DO NOTHING
        {f"RETURNING {returning}" if returning else ""}
    """
    params = [
        journey.pk, Enrollment.State.ACTIVE, first_step, now,
        *([] if data_column else [data]), now, journey.parallel,
        *source_params, *before_params, *audience_params,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:
            return [row[0] for row in cursor.fetchall()]
        return cursor.rowcount


# --- Contacts joining a list (contacts.signals.list_members_joined) -------------

LIST_JOIN_CHUNK = 1000


def journeys_handle_list_joins(*, contact_list_id: int, contact_ids, now=None) -> int:
    """Contacts who just joined a list enter every live journey with a
    trigger on joining it, as each journey's audience and re-entry policy
    allow. Set-based: one INSERT … SELECT per journey and thousand contacts.
    Returns how many entered."""
    journeys = _live_triggers(kind=JourneyTrigger.Kind.LIST_JOIN, contact_list_id=contact_list_id)
    return _enroll_contact_ids(journeys, contact_ids, {"listId": contact_list_id}, now)


def _enroll_contact_ids(journeys, contact_ids, trigger_data, now) -> int:
    """These contacts enter these journeys: one INSERT … SELECT per journey
    and thousand contacts."""
    contact_ids = sorted(set(contact_ids))
    if not journeys or not contact_ids:
        return 0
    now = now or timezone.now()
    data = Enrollment._meta.get_field("trigger_data").get_db_prep_value(trigger_data, connection)
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


# --- Started by another journey (its start journey step) ------------------------


def journey_takes_from_journey(*, journey: Journey, source_journey_id: int) -> bool:
    """Whether `journey` has a trigger "Another journey starts it" naming
    that journey (or any journey)."""
    return (
        journey.triggers.filter(kind=JourneyTrigger.Kind.JOURNEY)
        .filter(Q(source_journey__isnull=True) | Q(source_journey_id=source_journey_id))
        .exists()
    )


# --- Subscription changes (subscriptions.signals.subscriptions_changed) --------


def journeys_handle_subscription_changes(*, changes, now=None) -> int:
    """Contacts whose subscription just changed enter the live journeys with
    a trigger on that change (subscribing to, or unsubscribing from, that
    channel or message type). `changes` are (subscription, previous status)
    pairs; a pair whose status did not change starts nothing. Set-based:
    one INSERT … SELECT per trigger and thousand contacts. Returns how many
    entered."""
    changes = [(s, previous) for s, previous in changes if s.status != previous]
    if not changes:
        return 0
    channels = {s.channel_id for s, _ in changes if s.channel_id}
    types = {s.message_type_id for s, _ in changes if s.message_type_id}
    entered = 0
    for journey, triggers in _live_triggers(
        Q(channel_id__in=channels) | Q(message_type_id__in=types),
        kind=JourneyTrigger.Kind.SUBSCRIPTION,
    ).items():
        for trigger in triggers:
            contact_ids = [
                s.contact_id
                for s, _ in changes
                if s.status == trigger.subscription_change
                and (
                    (trigger.channel_id and s.channel_id == trigger.channel_id)
                    or (trigger.message_type_id and s.message_type_id == trigger.message_type_id)
                )
            ]
            scope = (
                {"channelId": trigger.channel_id}
                if trigger.channel_id
                else {"messageTypeId": trigger.message_type_id}
            )
            data = {"subscription": trigger.subscription_change, **scope}
            entered += _enroll_contact_ids([journey], contact_ids, data, now)
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
        exit_kind=Enrollment.ExitKind.FORGOTTEN,
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
