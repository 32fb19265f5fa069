"""A contact's timeline: sources registered by each app, merged newest first,
cut into pages by keyset."""

import base64
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from contacts import timeline
from contacts.timeline import Cursor, timeline_page
from messaging.models import Message
from tests.factories import (
    ConsentRecordFactory,
    ContactFactory,
    EngagementFactory,
    EnrollmentFactory,
    EventFactory,
    MessageFactory,
    StepRunFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser():
    return UserFactory(is_superuser=True)


def encoded(raw):
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def keys(page):
    return [(entry.source, entry.id) for entry in page.entries]


def test_every_app_contributes_a_source():
    names = [source.name for source in timeline.registered()]

    assert names == ["consent", "engagement", "event", "journey", "message"]


def test_the_timeline_merges_the_sources_newest_first(superuser):
    contact = ContactFactory()
    now = timezone.now()
    event = EventFactory(contact=contact, occurred_at=now - timedelta(hours=3))
    message = MessageFactory(contact=contact)
    Message.objects.filter(pk=message.pk).update(created_at=now - timedelta(hours=2))
    opened = EngagementFactory(message=message, occurred_at=now - timedelta(hours=1))
    passage = EnrollmentFactory(contact=contact, entered_at=now - timedelta(hours=4))
    EventFactory(occurred_at=now)  # someone else's

    page = timeline_page(contact=contact, user=superuser)

    assert keys(page) == [
        ("engagement", opened.pk),
        ("message", message.pk),
        ("event", event.pk),
        ("journey", passage.pk),
    ]
    assert page.is_first
    assert page.next_cursor == ""


def test_pages_walk_every_entry_once_even_when_many_share_an_instant(superuser):
    """Ties at one instant are ordered by source, then id: a page boundary in
    the middle of a tie neither repeats nor skips an entry."""
    contact = ContactFactory()
    instant = timezone.now().replace(microsecond=123456)
    events = [EventFactory(contact=contact, occurred_at=instant) for _ in range(4)]
    records = [ConsentRecordFactory(contact=contact) for _ in range(3)]
    ConsentRecordFactory._meta.model.objects.filter(contact=contact).update(created_at=instant)
    older = EventFactory(contact=contact, occurred_at=instant - timedelta(seconds=1))

    seen, cursor, pages = [], "", 0
    while True:
        page = timeline_page(contact=contact, user=superuser, cursor=cursor, limit=3)
        seen += keys(page)
        pages += 1
        if not page.next_cursor:
            break
        cursor = page.next_cursor

    assert seen == [
        *[("event", event.pk) for event in reversed(events)],
        *[("consent", record.pk) for record in reversed(records)],
        ("event", older.pk),
    ]
    assert pages == 3


def test_a_cursor_survives_the_round_trip():
    cursor = Cursor(timezone.now(), "message", 42)

    assert Cursor.decode(cursor.encode()) == cursor


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage",
        "%%%",
        "x" * 500,
        Cursor(timezone.now(), "event", 1).encode()[:-3],
        encoded("2026-12-07|event|1"),  # a date, not a time
        encoded("not-a-date|event|1"),
        encoded("2026-12-07T00:00:00+00:00|event|-1"),
        encoded("2026-12-07T00:00:00+00:00|event|one"),
        encoded("2026-12-07T00:00:00+00:00|event"),
        encoded("2026-12-07T00:00:00+00:00||1"),
        encoded("2026-12-07T00:00:00|event|1"),  # a time without its zone
        encoded("2026-13-45T00:00:00+00:00|event|1"),
    ],
)
def test_a_garbage_cursor_gives_the_first_page(superuser, garbage):
    contact = ContactFactory()
    newest = EventFactory(contact=contact)

    page = timeline_page(contact=contact, user=superuser, cursor=garbage)

    assert Cursor.decode(garbage) is None
    assert page.is_first
    assert keys(page) == [("event", newest.pk)]


def test_staff_see_only_the_sources_they_may_view():
    contact = ContactFactory()
    event = EventFactory(contact=contact)
    MessageFactory(contact=contact)
    ConsentRecordFactory(contact=contact)
    StepRunFactory(enrollment=EnrollmentFactory(contact=contact))
    user = UserFactory()
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_contact", "view_event"])
    )

    page = timeline_page(contact=contact, user=user)

    assert keys(page) == [("event", event.pk)]
    assert [source.name for source in page.sources] == ["event"]
