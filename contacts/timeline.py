"""A contact's timeline: everything that happened to one contact, newest first.

Contacts keeps only the registry and the paging; each app contributes what it
keeps about a contact (events here; messages, engagement, consent and journey
passages from the apps above) by registering a source from its own
`AppConfig.ready()`, so imports still flow only downwards.

Pages are cut by keyset, never by OFFSET: an entry is ordered by (time,
source name, id), the cursor is the last entry shown, and each source reads
only rows strictly before it through its (contact, time) index. A page of N
entries costs each source one query of at most N + 1 rows, however long the
contact's history is.
"""

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q
from django.utils.dateparse import parse_datetime

PAGE_SIZE = 25


@dataclass(frozen=True)
class Entry:
    """One thing on the timeline. `template` shows it (with `entry` in its
    context); `data` is whatever that template reads."""

    at: datetime
    source: str
    id: int
    template: str
    data: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (self.at, self.source, self.id)


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: entries strictly older than (at, source, id) come next."""

    at: datetime
    source: str
    id: int

    def encode(self) -> str:
        raw = f"{self.at.isoformat()}|{self.source}|{self.id}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> "Cursor | None":
        """The cursor `value` names, or None for anything else (the first page)."""
        if not value or len(value) > 200:
            return None
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            at, source, pk = raw.split("|")
            moment = parse_datetime(at)
            pk = int(pk)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if moment is None or moment.tzinfo is None or not source or pk < 0:
            return None
        return cls(moment, source, pk)


@dataclass(frozen=True)
class Window:
    """What a source is asked for: `limit` entries of `contact`, newest first,
    all before `before` (None: from the newest)."""

    contact: object
    before: Cursor | None
    limit: int

    def older(self, source: str, at: str, pk: str = "pk") -> Q:
        """The rows of `source` that come after the cursor, ordered by the
        fields `at` and `pk` (a filter for the source's queryset)."""
        cursor = self.before
        if cursor is None:
            return Q()
        if source < cursor.source:
            # Ties at the cursor's instant order by source name: this source's
            # rows at that instant all come after the cursor's.
            return Q(**{f"{at}__lte": cursor.at})
        if source > cursor.source:
            return Q(**{f"{at}__lt": cursor.at})
        return Q(**{f"{at}__lt": cursor.at}) | Q(**{at: cursor.at, f"{pk}__lt": cursor.id})


class Source:
    """What an app contributes. `name` orders entries of the same instant and
    must be unique; `permission` ("app.codename") hides the source from staff
    who may not see what it shows."""

    name = ""
    permission = ""

    def visible_to(self, user) -> bool:
        return not self.permission or user.has_perm(self.permission)

    def entries(self, window: Window) -> Iterable[Entry]:
        """At most window.limit entries of window.contact, newest first, all
        older than window.before (`newest` pages a queryset so)."""
        raise NotImplementedError

    def newest(self, window: Window, rows, at: str):
        """The page of `rows` (the contact's, timed by the field `at`) that
        the window asks for: after its cursor, newest first, at most its limit."""
        return rows.filter(window.older(self.name, at)).order_by(f"-{at}", "-pk")[: window.limit]


_sources: dict[str, Source] = {}


def register(source: Source) -> Source:
    """Add `source` to every contact's timeline (again under the same name: replace it)."""
    if not source.name or "|" in source.name:
        raise ValueError("A timeline source needs a name without '|'.")
    _sources[source.name] = source
    return source


def registered() -> list[Source]:
    return [_sources[name] for name in sorted(_sources)]


@dataclass(frozen=True)
class TimelinePage:
    entries: list[Entry]
    # The cursor of the next (older) page, or "" on the last page.
    next_cursor: str
    # Whether this is the newest page (no cursor, or a cursor that was not one).
    is_first: bool
    # The sources shown (the viewer may see them).
    sources: list[Source]


def timeline_page(*, contact, user, cursor: str = "", limit: int = PAGE_SIZE) -> TimelinePage:
    """One page of `contact`'s timeline as `user` may see it, starting after
    `cursor` (from the newest when empty or not a cursor this made)."""
    before = Cursor.decode(cursor)
    window = Window(contact=contact, before=before, limit=limit + 1)
    sources = [source for source in registered() if source.visible_to(user)]
    entries = [entry for source in sources for entry in source.entries(window)]
    entries.sort(key=lambda entry: entry.key, reverse=True)
    page = entries[:limit]
    next_cursor = ""
    if len(entries) > limit:
        next_cursor = Cursor(*page[-1].key).encode()
    return TimelinePage(page, next_cursor, before is None, sources)


def pretty_json(value) -> str:
    """JSON data as a person reads it (empty for nothing)."""
    if value in (None, {}, []):
        return ""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


# --- contacts' own source ------------------------------------------------------


class EventSource(Source):
    """Events the contact did, as integrators and tracking reported them."""

    name = "event"
    permission = "contacts.view_event"

    def entries(self, window):
        from contacts.models import Event

        # Read through the (contact, name, occurred_at) index: the contact's
        # events, then the newest of them.
        events = Event.objects.filter(contact=window.contact).only(
            "pk", "name", "data", "occurred_at", "client_event_id"
        )
        for event in self.newest(window, events, "occurred_at"):
            yield Entry(
                event.occurred_at,
                self.name,
                event.pk,
                "admin/contacts/timeline/event.html",
                {"event": event, "data_json": pretty_json(event.data)},
            )


register(EventSource())
