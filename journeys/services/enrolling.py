"""Enrolling contacts by hand, from the admin: chosen contacts, a list's
members or a segment's contacts, into a live journey.

Every path is set-based (INSERT … SELECT) and goes through the same
statement as the other entries, so the journey's audience and re-entry
policy apply exactly as they do when a trigger fires.
"""

from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from contacts.conditions import compile_conditions
from contacts.models import Contact, Segment
from contacts.redis import default_queue
from journeys.models import Enrollment, Journey
from journeys.services.entry import (
    LIST_ENTRY_CHUNK,
    LIST_ENTRY_TIMEOUT,
    _enroll_from,
    _first_step,
    journeys_enroll_contacts,
    journeys_enroll_list,
)

# Up to this many contacts enter at once, while the marketer waits; a bigger
# list or segment enters in a background job.
ENROLL_NOW_LIMIT = 1_000
# Contacts chosen one by one on the contact list: at most this many (more is
# a list or a segment's work).
SELECTED_LIMIT = 1_000


class EnrollError(ValueError):
    """The contacts cannot enter; the message says why (no one entered)."""


@dataclass(frozen=True)
class Enrolled:
    """What an enrollment from the admin did: `entered` contacts entered now
    (the others were kept out by the journey's audience or re-entry policy),
    or, `queued`, a background job enrolls them shortly."""

    journey: Journey
    entered: int = 0
    queued: bool = False


def audience_size(*, contact_list=None, segment=None, limit=None) -> int:
    """How many contacts a list holds or a segment matches now, counted up to
    `limit` + 1 at most: enough to say "more than `limit`" without counting
    a million rows. `limit` defaults to ENROLL_NOW_LIMIT."""
    limit = ENROLL_NOW_LIMIT if limit is None else limit
    return _audience(contact_list=contact_list, segment=segment)[: limit + 1].count()


def _audience(*, contact_list=None, segment=None, now=None):
    if contact_list is not None:
        return Contact.objects.filter(lists=contact_list).order_by().values("id")
    return (
        Contact.objects.filter(compile_conditions(segment.conditions, now=now or timezone.now()))
        .order_by()
        .values("id")
    )


def _live(journey: Journey) -> Journey:
    journey = Journey.objects.filter(pk=journey.pk).first()
    if journey is None or journey.state != Journey.State.LIVE:
        raise EnrollError("Only a live journey takes contacts: go live with it first.")
    return journey


def journey_enroll_selected(*, journey: Journey, contact_ids) -> Enrolled:
    """The contacts `contact_ids` enter `journey` now, as its audience and
    re-entry policy allow: one INSERT … SELECT."""
    journey = _live(journey)
    contact_ids = list(contact_ids)
    if len(contact_ids) > SELECTED_LIMIT:
        raise EnrollError(
            f"Choose at most {SELECTED_LIMIT:,} contacts at a time: to enroll more, put them "
            "in a list or a segment and enroll that."
        )
    entered = journeys_enroll_contacts(
        journey=journey, entries=[(contact_id, {}) for contact_id in contact_ids]
    )
    return Enrolled(journey=journey, entered=len(entered))


def journey_enroll_audience(*, journey: Journey, contact_list=None, segment=None) -> Enrolled:
    """A list's members or a segment's contacts enter `journey`, as its
    audience and re-entry policy allow: now if they are few, else in a
    background job enqueued once this transaction commits (running it twice
    is harmless: whoever is already in is left alone)."""
    journey = _live(journey)
    if (contact_list is None) == (segment is None):
        raise EnrollError("Choose a list or a segment.")
    if audience_size(contact_list=contact_list, segment=segment) <= ENROLL_NOW_LIMIT:
        if contact_list is not None:
            entered = journeys_enroll_list(
                journey_id=journey.pk, list_id=contact_list.pk, trigger_data={}
            )
        else:
            entered = journeys_enroll_segment(journey_id=journey.pk, segment_id=segment.pk)
        return Enrolled(journey=journey, entered=entered)
    transaction.on_commit(
        lambda: _enqueue(
            journey_id=journey.pk,
            list_id=contact_list.pk if contact_list else None,
            segment_id=segment.pk if segment else None,
        )
    )
    return Enrolled(journey=journey, queued=True)


def _enqueue(*, journey_id, list_id, segment_id):
    from journeys.tasks import journeys_enroll_list_task, journeys_enroll_segment_task

    if list_id is not None:
        task, kwargs = journeys_enroll_list_task, {"list_id": list_id, "trigger_data": {}}
    else:
        task, kwargs = journeys_enroll_segment_task, {"segment_id": segment_id}
    default_queue().enqueue(task, journey_id=journey_id, job_timeout=LIST_ENTRY_TIMEOUT, **kwargs)


def journeys_enroll_segment(
    *, journey_id: int, segment_id: int, trigger_data=None, chunk_size=None, now=None
) -> int:
    """Every contact who matches a segment now enters a live journey, as its
    audience and re-entry policy allow; returns how many entered.

    Set-based and chunked by contact id, as journeys_enroll_list is: per
    chunk one SELECT finds the chunk's last contact and one INSERT … SELECT
    enrolls the chunk's contacts who match the segment's conditions, each in
    its own transaction. Running it twice is harmless. A journey that stopped
    being live, or a segment deleted, before the job ran enrolls no one.
    """
    journey = Journey.objects.filter(pk=journey_id, state=Journey.State.LIVE).first()
    segment = Segment.objects.filter(pk=segment_id).first()
    first_step = _first_step(journey_id) if journey else None
    if segment is None or first_step is None:
        return 0
    now = now or timezone.now()
    chunk_size = chunk_size or LIST_ENTRY_CHUNK
    data = Enrollment._meta.get_field("trigger_data").get_db_prep_value(
        {"segmentId": segment.pk, **(trigger_data or {})}, connection
    )
    matching = _audience(segment=segment, now=now)
    entered, after = 0, 0
    while True:
        upto = next(
            iter(
                Contact.objects.filter(pk__gt=after)
                .order_by("pk")
                .values_list("pk", flat=True)[chunk_size - 1 : chunk_size]
            ),
            None,
        )
        chunk = matching.filter(pk__gt=after)
        if upto is not None:
            chunk = chunk.filter(pk__lte=upto)
        sql, params = chunk.query.sql_with_params()
        source = f"FROM (SELECT s.id AS contact_id FROM ({sql}) s) m WHERE true"
        entered += _enroll_from(
            journey, source, list(params), first_step, now, data=data, contact_range=(after, upto)
        )
        if upto is None:
            return entered
        after = upto
