"""How fast scheduled triggers enter many contacts: a list scheduled at a
local time of day (contacts in several time zones), a segment entry, and a
yearly date in attributes. Each is one trigger firing: a handful of
statements whatever the number of contacts."""

import time
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day

from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact, ContactList, ListMembership, Segment
from journeys.models import Journey, JourneyTrigger, SendMessageStep
from journeys.services.triggers import trigger_fire
from messaging.models import Template

CONTACTS = 20_000
ZONES = ["", "Europe/Oslo", "Asia/Tokyo", "America/New_York", "Australia/Sydney"]
T0 = datetime(2030, 1, 10, tzinfo=UTC)


def _journey(name, **trigger):
    journey = Journey.objects.create(name=name, state=Journey.State.LIVE, reentry="always")
    SendMessageStep.objects.create(
        journey=journey, key="hello", position=1, template=Template.objects.first()
    )
    return JourneyTrigger.objects.create(journey=journey, **trigger)


def _fire(label, trigger, *moments):
    for moment in moments[:-1]:
        trigger_fire(trigger_id=trigger.pk, now=moment)
    before = trigger.journey.enrollments.count()
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as captured:
        trigger_fire(trigger_id=trigger.pk, now=moments[-1])
    seconds = time.perf_counter() - started
    entered = trigger.journey.enrollments.count() - before
    rate = f"{entered / seconds:,.0f}/s" if seconds else "n/a"
    print(f"   {label}: {entered:,} entered in {seconds:.2f}s ({rate}), {len(captured)} queries")


def run():
    from tests.factories import TemplateFactory

    TemplateFactory(name="Bench hello")
    Contact.objects.bulk_create(
        Contact(
            email=f"trigger{n}@example.com",
            timezone=ZONES[n % len(ZONES)],
            attributes={"plan": "pro", "birthday": f"19{n % 90 + 10}-01-{n % 2 + 11:02d}"},
        )
        for n in range(CONTACTS)
    )
    members = ContactList.objects.create(name="Bench members")
    ListMembership.objects.bulk_create(
        ListMembership(contact_list=members, contact_id=pk)
        for pk in Contact.objects.values_list("pk", flat=True)
    )
    scheduled = _journey(
        "Bench schedule",
        kind="schedule",
        contact_list=members,
        starts_at=T0 - timedelta(days=1),
        every=1,
        at_local_time=time_of_day(9, 0),
    )
    _fire("list at 09:00 local, one day", scheduled, T0, T0 + timedelta(days=1))

    pros = Segment.objects.create(
        name="Bench pros", conditions={"attribute": "plan", "op": "eq", "value": "pro"}
    )
    segment_entry = _journey("Bench segment", kind="segment_entry", segment=pros)
    trigger_fire(trigger_id=segment_entry.pk, now=T0)  # the snapshot: everyone already in
    Contact.objects.update(attributes={"plan": "free"})
    trigger_fire(trigger_id=segment_entry.pk, now=T0 + timedelta(minutes=1))  # all leave
    Contact.objects.update(attributes={"plan": "pro", "birthday": "1990-01-12"})
    _fire("segment entry, everyone anew", segment_entry, T0 + timedelta(minutes=2))

    birthdays = _journey(
        "Bench birthdays", kind="date_attribute", date_attribute="birthday", offset_days=-1
    )
    _fire(
        "birthday tomorrow, every zone",
        birthdays,
        T0 - timedelta(days=1),
        T0 + timedelta(days=1, hours=1),
    )
