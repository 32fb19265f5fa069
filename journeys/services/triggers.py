"""Entries the scheduler fires: schedules, dates in contacts' attributes and
segment entries; and exits of contacts who left a journey's audience.

Each trigger is fired in a transaction of its own that locks its row (others
skip it: two schedulers never fire one trigger at once), enrolls set-based
and moves the trigger's `fired_until` watermark to the pass's time. A moment
(a schedule's run, a contact's birthday at 09:00 in their time zone) fires
when it falls in (fired_until, now]: once, however often the scheduler
passes, and late rather than never when the scheduler was stopped (up to
CATCH_UP for dates in attributes).

Times of day in each contact's time zone stay set-based: the contacts
concerned are grouped by their `timezone` value (a handful of distinct
values, found with one DISTINCT query), the moment is worked out per zone in
Python, and the contacts of the zones whose moment is due enter in one
INSERT … SELECT.
"""

import zoneinfo
from datetime import date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from contacts.conditions import compile_conditions
from contacts.models import Contact
from journeys.models import Enrollment, Journey, JourneyTrigger, TriggerMembership
from journeys.services.editing import enrollments_exit
from journeys.services.entry import _enroll_from, _first_step

Kind = JourneyTrigger.Kind
SCHEDULED_KINDS = (Kind.SCHEDULE, Kind.DATE_ATTRIBUTE, Kind.SEGMENT_ENTRY)
# Dates in attributes further back than this are not caught up after the
# scheduler was stopped: a birthday message a month late is worse than none.
CATCH_UP = timedelta(days=7)
AUDIENCE_EXIT_REASON = "no longer in the journey's audience"


def triggers_tick(*, now=None) -> int:
    """The scheduler's trigger pass: fire what is due, then sweep every open
    passage of a journey with an audience for contacts who left it. Returns
    how many contacts entered."""
    now = now or timezone.now()
    entered = triggers_fire_due(now=now)
    journeys_audience_exit(now=now)
    return entered


def triggers_fire_due(*, now=None) -> int:
    """Fire every live journey's schedules, date-attribute triggers and
    segment entries that are due; returns how many contacts entered."""
    now = now or timezone.now()
    entered = 0
    ids = JourneyTrigger.objects.filter(
        kind__in=SCHEDULED_KINDS, journey__state=Journey.State.LIVE
    ).values_list("pk", flat=True)
    for trigger_id in list(ids):
        entered += trigger_fire(trigger_id=trigger_id, now=now)
    return entered


def trigger_fire(*, trigger_id: int, now=None) -> int:
    """Fire one scheduled trigger for what fell due since it last fired, in
    one transaction with its watermark. Returns how many entered."""
    now = now or timezone.now()
    with transaction.atomic():
        trigger = (
            JourneyTrigger.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("journey", "segment")
            .filter(pk=trigger_id, journey__state=Journey.State.LIVE)
            .first()
        )
        if trigger is None:
            return 0  # gone, not live, or being fired by another scheduler
        since = trigger.fired_until or trigger.created_at
        if since >= now:
            return 0
        if trigger.kind == Kind.SCHEDULE:
            entered = _fire_schedule(trigger, since, now)
        elif trigger.kind == Kind.DATE_ATTRIBUTE:
            entered = _fire_dates(trigger, since, now)
        else:
            entered = _refresh_segment(trigger, now)
        JourneyTrigger.objects.filter(pk=trigger.pk).update(fired_until=now)
    return entered


# --- moments ---------------------------------------------------------------------


def _zone(name):
    """A `timezone` value as Contact.zone reads it: the site's when empty or unknown."""
    try:
        return zoneinfo.ZoneInfo(name) if name else timezone.get_default_timezone()
    except (KeyError, ValueError):
        return timezone.get_default_timezone()


def _step(trigger) -> timedelta | None:
    if not trigger.every:
        return None
    return (
        timedelta(weeks=trigger.every)
        if trigger.every_unit == "weeks"
        else timedelta(days=trigger.every)
    )


def _latest_run(trigger, now, zone) -> datetime | None:
    """The schedule's latest run at or before `now`, for contacts in `zone`
    (when it runs at a local time of day), or None before its first."""
    step = _step(trigger)
    if trigger.at_local_time is None:
        first = trigger.starts_at
        if first > now:
            return None
        if step is None:
            return first
        return first + ((now - first) // step) * step
    first_day = timezone.localtime(trigger.starts_at).date()
    if step is None:
        moment = datetime.combine(first_day, trigger.at_local_time, tzinfo=zone)
        return moment if moment <= now else None
    # From the local day in `zone` after today backwards, each moved back to
    # a run day: the first whose moment has passed is the latest run.
    today = now.astimezone(zone).date()
    for day in (today + timedelta(days=1), today, today - timedelta(days=1)):
        day -= timedelta(days=(day - first_day).days % step.days)
        moment = datetime.combine(day, trigger.at_local_time, tzinfo=zone)
        if day >= first_day and moment <= now:
            return moment
    return None


def _zones_due(contacts, due) -> list[str]:
    """The `timezone` values among `contacts` for which `due(zone)` holds."""
    values = contacts.order_by().values_list("timezone", flat=True).distinct()
    return [value for value in values if due(_zone(value))]


# --- schedules ---------------------------------------------------------------------


def _audience_of(trigger, now):
    """A schedule's contacts: its list's members or its segment's."""
    if trigger.contact_list_id:
        return Contact.objects.filter(lists=trigger.contact_list_id)
    return Contact.objects.filter(compile_conditions(trigger.segment.conditions, now=now))


def _fire_schedule(trigger, since, now) -> int:
    contacts = _audience_of(trigger, now)
    if trigger.at_local_time is None:
        run = _latest_run(trigger, now, None)
        if run is None or run <= since:
            return 0
    else:

        def due(zone):
            run = _latest_run(trigger, now, zone)
            return run is not None and run > since

        zones = _zones_due(contacts, due)
        if not zones:
            return 0
        contacts = contacts.filter(timezone__in=zones)
    return _enroll_contacts(trigger, contacts, now, {"scheduled": True})


# --- dates in attributes ----------------------------------------------------------


def _date_q(trigger, days) -> Q:
    """Contacts whose date attribute, moved by the offset, falls on one of `days`."""
    key = "attributes__" + "__".join(trigger.date_attribute.split(".")) + "__regex"
    q = Q(pk__in=[])
    for day in days:
        held = day - timedelta(days=trigger.offset_days)
        if not trigger.yearly:
            q |= Q(**{key: rf"^{held:%Y-%m-%d}"})
            continue
        q |= Q(**{key: rf"^[0-9]{{4}}-{held:%m-%d}"})
        if held.month == 2 and held.day == 28 and not _leap(held.year):
            q |= Q(**{key: r"^[0-9]{4}-02-29"})  # born on the 29th: the 28th in common years
    return q


def _leap(year) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _due_days(trigger, since, now, zone) -> list[date]:
    """The local days in `zone` whose moment (the trigger's time of day, or
    midnight) falls in (since, now], at most CATCH_UP back."""
    since = max(since, now - CATCH_UP)
    at = trigger.at_local_time or time(0, 0)
    day, last = since.astimezone(zone).date(), now.astimezone(zone).date()
    days = []
    while day <= last:
        moment = datetime.combine(day, at, tzinfo=zone)
        if since < moment <= now:
            days.append(day)
        day += timedelta(days=1)
    return days


def _fire_dates(trigger, since, now) -> int:
    holders = Contact.objects.filter(
        compile_conditions({"attribute": trigger.date_attribute, "op": "exists"})
    )
    by_zone = {}
    for value in holders.order_by().values_list("timezone", flat=True).distinct():
        if days := _due_days(trigger, since, now, _zone(value)):
            by_zone.setdefault(tuple(days), []).append(value)
    if not by_zone:
        return 0
    due = Q(pk__in=[])
    for days, zones in by_zone.items():
        due |= Q(timezone__in=zones) & _date_q(trigger, days)
    return _enroll_contacts(
        trigger, holders.filter(due), now, {"dateAttribute": trigger.date_attribute}
    )


# --- segment entries --------------------------------------------------------------


def _refresh_segment(trigger, now) -> int:
    """Contacts who match the segment now and did not at the last refresh
    enter; the snapshot becomes the segment as it is now. The first refresh
    only takes the snapshot: those already in the segment do not enter."""
    matching = Contact.objects.filter(compile_conditions(trigger.segment.conditions, now=now))
    snapshot = TriggerMembership.objects.filter(trigger=trigger)
    newcomers = matching.exclude(pk__in=snapshot.values("contact_id"))
    entered = 0
    if trigger.fired_until is not None:
        entered = _enroll_contacts(trigger, newcomers, now, {"segmentId": trigger.segment_id})
    snapshot.exclude(contact_id__in=matching.values("pk")).delete()
    sql, params = newcomers.order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TriggerMembership._meta.db_table} (trigger_id, contact_id) "
            f"SELECT %s, n.id FROM ({sql}) n WHERE true ON CONFLICT DO NOTHING",
            [trigger.pk, *params],
        )
    return entered


def _enroll_contacts(trigger, contacts, now, trigger_data) -> int:
    """The contacts of a queryset enter the trigger's journey: one INSERT … SELECT."""
    first_step = _first_step(trigger.journey_id)
    sql, params = contacts.order_by().values("id").query.sql_with_params()
    data = Enrollment._meta.get_field("trigger_data").get_db_prep_value(trigger_data, connection)
    source = f"FROM (SELECT s.id AS contact_id FROM ({sql}) s) m WHERE true"
    return _enroll_from(trigger.journey, source, list(params), first_step, now, data=data)


# --- audience exits ----------------------------------------------------------------


def journeys_audience_exit(*, now=None, due_only=False) -> int:
    """Take contacts who no longer match their journey's audience out of it
    (exited, "no longer in the journey's audience"). One UPDATE per live
    journey with an audience. With `due_only`, only passages about to move on
    (next_run_at <= now) are checked: the scheduler does that before every
    claim, so no step runs for someone outside the audience, and sweeps every
    open passage each time it fires triggers. Returns how many left."""
    now = now or timezone.now()
    left = 0
    for journey in Journey.objects.filter(state=Journey.State.LIVE).exclude(audience={}):
        passages = Enrollment.objects.filter(journey=journey).exclude(
            contact__in=Contact.objects.filter(compile_conditions(journey.audience, now=now))
        )
        if due_only:
            passages = passages.filter(next_run_at__lte=now)
        left += enrollments_exit(
            enrollments=passages, reason=AUDIENCE_EXIT_REASON, kind=Enrollment.ExitKind.AUDIENCE
        )
    return left
