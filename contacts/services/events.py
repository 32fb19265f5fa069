"""Write paths for events: recording them, and handing them to listeners in batches."""

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from contacts.models import Contact, Event
from contacts.redis import default_queue, redis_client
from contacts.services.contacts import contact_find, contact_get_or_create
from contacts.signals import events_recorded

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackedEvent:
    event: Event
    created: bool


def event_track(
    *,
    name: str,
    email: str | None = None,
    user_id: str | None = None,
    data: dict | None = None,
    occurred_at: datetime | None = None,
    client_event_id: str | None = None,
    campaign_id: int | None = None,
    template_id: int | None = None,
) -> TrackedEvent:
    """Record an event for a contact (created if new) and tell listeners.

    Every event gets an id (the client's, or a new one); a repeated id
    updates the stored event instead of adding one, so integrators may
    re-deliver safely. Listeners (journeys) hear of new events only, after
    this commits, in batches: see event_record.
    """
    if not client_event_id and connection.vendor == "postgresql":
        tracked = _event_track_in_one_statement(
            name=name,
            email=email,
            user_id=user_id,
            data=data or {},
            occurred_at=occurred_at or timezone.now(),
            campaign_id=campaign_id,
            template_id=template_id,
        )
        if tracked is not None:
            return tracked
    with transaction.atomic():
        contact, _ = contact_get_or_create(email=email, user_id=user_id)
        return event_record(
            contact=contact,
            name=name,
            data=data,
            occurred_at=occurred_at,
            client_event_id=client_event_id,
            campaign_id=campaign_id,
            template_id=template_id,
        )


# The hot path of the API (events/track without an id of the client's): the
# contact found or created and the event stored in one statement, one round
# trip and no transaction of its own, where the general path takes seven.
# Identity follows contact_get_or_create: by email when there is one, else by
# userId. When it cannot decide alone (the userId belongs to another contact,
# or the same contact is being created concurrently) it stores nothing and the
# general path answers.
_TRACK_SQL = """
WITH found AS (
    SELECT id FROM {contact} WHERE {lookup} = %(identity)s
), created AS (
    INSERT INTO {contact}
        (email, user_id, phone, timezone, locale, attributes, blocklisted, created_at, updated_at)
    SELECT %(email)s, %(user_id)s, '', '', '', '{{}}'::jsonb, false, %(now)s, %(now)s
    WHERE NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT DO NOTHING
    RETURNING id
), the_contact AS (
    SELECT id FROM found UNION ALL SELECT id FROM created LIMIT 1
)
INSERT INTO {event}
    (contact_id, name, data, occurred_at, received_at, client_event_id,
     campaign_id, template_id, dispatched)
SELECT id, %(name)s, %(data)s::jsonb, %(occurred_at)s, %(now)s, %(client_event_id)s,
       %(campaign_id)s, %(template_id)s, false
FROM the_contact
RETURNING id, contact_id
"""


def _event_track_in_one_statement(
    *, name, email, user_id, data, occurred_at, campaign_id, template_id
) -> TrackedEvent | None:
    email = (email or "").strip().lower() or None
    user_id = (user_id or "").strip() or None
    if not email and not user_id:
        return None  # the general path raises the error
    now = timezone.now()
    client_event_id = uuid.uuid4().hex
    sql = _TRACK_SQL.format(
        contact=Contact._meta.db_table,
        event=Event._meta.db_table,
        lookup="email" if email else "user_id",
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "identity": email or user_id,
                "email": email,
                "user_id": user_id,
                "now": now,
                "name": name,
                "data": json.dumps(data),
                "occurred_at": occurred_at,
                "client_event_id": client_event_id,
                "campaign_id": campaign_id,
                "template_id": template_id,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    event = Event(
        pk=row[0],
        contact_id=row[1],
        name=name,
        data=data,
        occurred_at=occurred_at,
        received_at=now,
        client_event_id=client_event_id,
        campaign_id=campaign_id,
        template_id=template_id,
        dispatched=False,
    )
    event._state.adding = False
    event._state.db = connection.alias
    transaction.on_commit(events_dispatch_soon)
    return TrackedEvent(event=event, created=True)


class EventIdConflict(ValueError):
    """The client's event id names an event of another contact."""


def event_record(
    *,
    contact: Contact,
    name: str,
    data: dict | None = None,
    occurred_at: datetime | None = None,
    client_event_id: str | None = None,
    campaign_id: int | None = None,
    template_id: int | None = None,
) -> TrackedEvent:
    """Record an event for a known contact; see event_track.

    Listeners hear of new events shortly after this commits, in batches
    (events_dispatch), never inside it: a listener's failure cannot fail
    the caller. A client's event id seen before updates that event, if it is
    this contact's, and raises EventIdConflict if it is another's.
    """
    data = data or {}
    occurred_at = occurred_at or timezone.now()
    # An id made here is new: there is nothing stored under it to update.
    known_id = bool(client_event_id)
    client_event_id = client_event_id or uuid.uuid4().hex
    fields = {
        "contact": contact,
        "name": name,
        "data": data,
        "occurred_at": occurred_at,
        "campaign_id": campaign_id,
        "template_id": template_id,
    }
    # No savepoint: nothing here is worth keeping apart from the caller's transaction.
    with transaction.atomic(savepoint=False):
        event = (
            Event.objects.select_for_update().filter(client_event_id=client_event_id).first()
            if known_id
            else None
        )
        if event is not None:
            if event.contact_id != contact.pk:
                raise EventIdConflict(
                    f"The event id {client_event_id!r} belongs to another user's event."
                )
            for field, value in fields.items():
                setattr(event, field, value)
            event.save(update_fields=[*fields])
            return TrackedEvent(event=event, created=False)
        if not known_id:
            # A fresh id cannot collide: no savepoint to guard the insert.
            event = Event.objects.create(client_event_id=client_event_id, **fields)
            transaction.on_commit(events_dispatch_soon)
            return TrackedEvent(event=event, created=True)
        try:
            with transaction.atomic():
                event = Event.objects.create(client_event_id=client_event_id, **fields)
        except IntegrityError:
            # The same id stored concurrently: that one stands, updated with this.
            return event_record(
                contact=contact,
                name=name,
                data=data,
                occurred_at=occurred_at,
                client_event_id=client_event_id,
                campaign_id=campaign_id,
                template_id=template_id,
            )
        transaction.on_commit(events_dispatch_soon)
    return TrackedEvent(event=event, created=True)


# While set, a dispatch job is queued or running: more events need no job of their own.
_DISPATCH_SCHEDULED = "waymark:events-dispatch-scheduled"


# When this process last made sure a dispatch job was on its way (monotonic
# seconds). Within _DISPATCH_MEMO of it, the process does not ask Redis again:
# at hundreds of events a second that is a round trip per request saved, and
# an event that just missed the job is dispatched by the next request's, or by
# the scheduler's pass within WAYMARK_SCHEDULER_INTERVAL.
_DISPATCH_MEMO = 0.5
_dispatch_asked_at = float("-inf")


def events_dispatch_soon():
    """Have new events dispatched by a worker within moments, one job at a time.

    Many requests a second share one job: the first to find none scheduled
    enqueues it. Should Redis lose it, the scheduler's pass dispatches
    whatever is left (events are marked in the database, not in Redis).
    """
    global _dispatch_asked_at
    now = time.monotonic()
    if now - _dispatch_asked_at < _DISPATCH_MEMO:
        return
    _dispatch_asked_at = now
    if redis_client().set(_DISPATCH_SCHEDULED, 1, nx=True, ex=5):
        from contacts.tasks import contacts_dispatch_events_task

        default_queue().enqueue(contacts_dispatch_events_task)


@dataclass(frozen=True)
class Dispatched:
    events: int
    # Events whose listeners raised even on their own: stored, marked, and logged.
    failed: int = 0


def events_dispatch(*, limit: int = 1000) -> Dispatched:
    """Hand up to `limit` new events to listeners (events_recorded), oldest first.

    One transaction claims them (skipping any another dispatcher holds),
    lets the listeners act on the whole batch, and marks them dispatched. If
    the listeners fail on the batch, each event is retried alone, and an
    event that still fails is marked dispatched and logged rather than
    blocking every event after it.
    """
    with transaction.atomic():
        events = list(
            Event.objects.select_for_update(skip_locked=True)
            .filter(dispatched=False)
            .only("id", "contact_id", "name")
            .order_by("pk")[:limit]
        )
        if not events:
            return Dispatched(events=0)
        failed = 0
        try:
            with transaction.atomic():
                events_recorded.send(sender=Event, events=events)
        except Exception:
            logger.exception("event listeners failed on a batch; retrying one by one")
            for event in events:
                try:
                    with transaction.atomic():
                        events_recorded.send(sender=Event, events=[event])
                except Exception:
                    failed += 1
                    logger.exception("event listeners failed on event %s", event.pk)
        _mark_dispatched([e.pk for e in events])
    return Dispatched(events=len(events), failed=failed)


def _mark_dispatched(event_ids):
    if connection.vendor != "postgresql":  # SQLite, the embedded default
        Event.objects.filter(pk__in=event_ids).update(dispatched=True)
        return
    # One array parameter: cheaper to build and parse than an IN list of
    # thousands of placeholders.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Event._meta.db_table} SET dispatched = true WHERE id = ANY(%s)", [event_ids]
        )


def events_dispatch_all(*, limit: int = 1000) -> int:
    """Dispatch batches until none is left; how many events were dispatched."""
    # Cleared first: events stored from now on schedule a job of their own.
    redis_client().delete(_DISPATCH_SCHEDULED)
    total = 0
    while True:
        batch = events_dispatch(limit=limit)
        total += batch.events
        if batch.events < limit:
            return total


@dataclass(frozen=True)
class EventInput:
    """One event of a bulk request, validated: named by email or by user id."""

    name: str
    email: str | None = None
    user_id: str | None = None
    data: dict | None = None
    occurred_at: datetime | None = None
    client_event_id: str | None = None
    campaign_id: int | None = None
    template_id: int | None = None


@dataclass(frozen=True)
class EventFailure:
    """An event of a bulk request that was not stored, by its position (from 0)."""

    index: int
    reason: str  # "conflict": its id is another contact's, or its userId another email's
    msg: str


@dataclass(frozen=True)
class RecordedEvents:
    created: int
    updated: int
    failures: list  # EventFailure, in request order


def _norm(value: str | None) -> str | None:
    return (value or "").strip() or None


@dataclass(frozen=True)
class ContactIds:
    """The contacts a batch names: their pks by (lower-case) email and by user id."""

    by_email: dict
    by_user_id: dict

    def get(self, email: str | None, user_id: str | None) -> int | None:
        """The contact named by email or, when no email is given, by user id."""
        email, user_id = _norm(email), _norm(user_id)
        return self.by_email.get(email.lower()) if email else self.by_user_id.get(user_id)


def contacts_get_or_create_many(*, identities: list, create: bool = True) -> ContactIds:
    """The contacts named by (email, user id) pairs, as contact_get_or_create
    names them, creating those not yet known unless `create` is false.

    One select and one INSERT ... ON CONFLICT DO NOTHING ... RETURNING, however
    many pairs (and a second select when a row was created concurrently or
    its user id is another contact's). A new contact takes the user id of the first pair naming its
    email; one whose user id another contact holds is not created (get()
    then answers None for it).
    """
    emails, user_ids = {}, set()
    for email, user_id in identities:
        email, user_id = _norm(email), _norm(user_id)
        if email:
            emails.setdefault(email.lower(), user_id)
        elif user_id:
            user_ids.add(user_id)

    def select():
        named = Contact.objects.filter(email__in=list(emails)) | Contact.objects.filter(
            user_id__in=list(user_ids)
        )
        found = ContactIds(by_email={}, by_user_id={})
        for pk, email, user_id in named.values_list("pk", "email", "user_id"):
            if email:
                found.by_email[email] = pk
            if user_id:
                found.by_user_id[user_id] = pk
        return found

    found = select()
    if not create:
        return found
    new = [
        Contact(email=email, user_id=user_id)
        for email, user_id in emails.items()
        if email not in found.by_email
    ]
    taken = {contact.user_id for contact in new}
    new += [
        Contact(user_id=user_id) for user_id in user_ids - taken if user_id not in found.by_user_id
    ]
    if not new:
        return found
    # A contact created concurrently, or a user id another email holds, is
    # skipped here and found (or not) by the select after.
    if connection.vendor == "postgresql":
        inserted = _insert_contacts_pg(new)
        if len(inserted) == len(new):
            # All of them went in: the first select and these are every contact named.
            for pk, email, user_id in inserted:
                if email:
                    found.by_email[email] = pk
                if user_id:
                    found.by_user_id[user_id] = pk
            return found
    else:
        Contact.objects.bulk_create(new, ignore_conflicts=True)
    return select()


# On PostgreSQL a batch goes in as one array per column: a handful of
# parameters instead of ten per row, which is most of the cost of a bulk
# insert through the ORM. The columns are those contact_get_or_create and
# Event.objects.create fill.
_INSERT_CONTACTS_SQL = """
INSERT INTO {contact}
    (email, user_id, phone, timezone, locale, attributes, blocklisted, created_at, updated_at)
SELECT email, user_id, '', '', '', '{{}}'::jsonb, false, %(now)s, %(now)s
FROM unnest(%(emails)s::text[], %(user_ids)s::text[]) AS batch(email, user_id)
ON CONFLICT DO NOTHING
RETURNING id, email, user_id
"""

_INSERT_EVENTS_SQL = """
INSERT INTO {event}
    (contact_id, name, data, occurred_at, received_at, client_event_id,
     campaign_id, template_id, dispatched)
SELECT contact_id, name, data::jsonb, occurred_at, %(now)s, client_event_id,
       campaign_id, template_id, false
FROM unnest(
    %(contact_ids)s::bigint[], %(names)s::text[], %(data)s::text[],
    %(occurred_at)s::timestamptz[], %(client_event_ids)s::text[],
    %(campaign_ids)s::bigint[], %(template_ids)s::bigint[]
) AS batch(contact_id, name, data, occurred_at, client_event_id, campaign_id, template_id)
"""


def _insert_contacts_pg(contacts: list[Contact]) -> list[tuple]:
    """Insert what no one has inserted meanwhile; (id, email, user id) of each row in."""
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_CONTACTS_SQL.format(contact=Contact._meta.db_table),
            {
                "now": timezone.now(),
                "emails": [contact.email for contact in contacts],
                "user_ids": [contact.user_id for contact in contacts],
            },
        )
        return cursor.fetchall()


def _insert_events(events: list[Event]) -> None:
    if connection.vendor != "postgresql":
        Event.objects.bulk_create(events)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_EVENTS_SQL.format(event=Event._meta.db_table),
            {
                "now": timezone.now(),
                "contact_ids": [event.contact_id for event in events],
                "names": [event.name for event in events],
                "data": [json.dumps(event.data) for event in events],
                "occurred_at": [event.occurred_at for event in events],
                "client_event_ids": [event.client_event_id for event in events],
                "campaign_ids": [event.campaign_id for event in events],
                "template_ids": [event.template_id for event in events],
            },
        )


def events_record_many(*, items: list[EventInput], _retries: int = 2) -> RecordedEvents:
    """Record a batch of events set-based: contacts created as needed, new
    events inserted in one statement, re-delivered ids updated in one.

    Each item follows event_record's rule: an id seen before updates that
    event if it is the same contact's, and fails (nothing of it written) if
    it is another's. Within one batch, a later event with an id updates the
    earlier one. Listeners hear of new events after commit, as with event_record.
    """
    with transaction.atomic():
        contacts = contacts_get_or_create_many(
            identities=[(item.email, item.user_id) for item in items]
        )
        failures = []
        now = timezone.now()
        wanted = {}  # index -> (contact pk, item)
        for index, item in enumerate(items):
            contact_id = contacts.get(item.email, item.user_id)
            if contact_id is None:
                failures.append(
                    EventFailure(
                        index, "conflict", "That userId already belongs to another contact."
                    )
                )
                continue
            wanted[index] = (contact_id, item)

        client_ids = {item.client_event_id for _, item in wanted.values() if item.client_event_id}
        stored = {}
        if client_ids:
            stored = {
                event.client_event_id: event
                for event in Event.objects.select_for_update()
                .filter(client_event_id__in=client_ids)
                .only("pk", "client_event_id", "contact_id")
            }
        fields = ["name", "data", "occurred_at", "campaign_id", "template_id"]
        to_create, to_update = {}, {}  # client id -> Event
        fresh = []
        for index, (contact_id, item) in wanted.items():
            values = {
                "name": item.name,
                "data": item.data or {},
                "occurred_at": item.occurred_at or now,
                "campaign_id": item.campaign_id,
                "template_id": item.template_id,
            }
            client_id = item.client_event_id
            if not client_id:
                fresh.append(
                    Event(contact_id=contact_id, client_event_id=uuid.uuid4().hex, **values)
                )
                continue
            event = stored.get(client_id) or to_create.get(client_id)
            if event is not None and event.contact_id != contact_id:
                failures.append(
                    EventFailure(
                        index,
                        "conflict",
                        f"The event id {client_id!r} belongs to another user's event.",
                    )
                )
                continue
            if event is None:
                event = Event(contact_id=contact_id, client_event_id=client_id, **values)
                to_create[client_id] = event
            else:
                for field, value in values.items():
                    setattr(event, field, value)
                if client_id in stored:
                    to_update[client_id] = event
        new_events = fresh + list(to_create.values())
        try:
            with transaction.atomic():
                if new_events:
                    _insert_events(new_events)
        except IntegrityError:
            # An id stored concurrently: taken again, it is found and updated.
            if _retries <= 0:
                raise
            return events_record_many(items=items, _retries=_retries - 1)
        if to_update:
            Event.objects.bulk_update(list(to_update.values()), fields)
        if new_events:
            transaction.on_commit(events_dispatch_soon)
    failures.sort(key=lambda failure: failure.index)
    return RecordedEvents(created=len(new_events), updated=len(to_update), failures=failures)


def contact_events(
    *, email: str | None = None, user_id: str | None = None, limit: int = 30
) -> list[Event] | None:
    """A contact's latest events, newest first; None for an unknown contact."""
    # PostgreSQL cannot hold a NUL: no contact is named with one.
    if "\x00" in (email or "") + (user_id or ""):
        return None
    contact = contact_find(email=email, user_id=user_id)
    if contact is None:
        return None
    events = list(contact.events.order_by("-occurred_at", "-pk")[:limit])
    for event in events:
        event.contact = contact  # what the answer names each event's user by
    return events
