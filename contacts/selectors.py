"""Read paths of the contacts app that are more than one obvious query."""

import time
from dataclasses import dataclass, field
from datetime import datetime

from django.db import OperationalError, connection, transaction

from contacts.conditions import compile_conditions, conditions_validate
from contacts.models import Contact, Event, ListMembership

# A live count answers "about how big" while the condition is being written:
# counting stops here ("more than 100,000") instead of reading a million rows.
COUNT_CAP = 100_000
SAMPLE_SIZE = 10
# Each query of a preview gets this long before PostgreSQL cancels it, and all
# of them twice this, so a condition that has to read every contact cannot
# hold the page.
PREVIEW_TIMEOUT_MS = 2_000
# PostgreSQL's error code for a statement cancelled by statement_timeout.
QUERY_CANCELED = "57014"
# How often (in steps of its virtual machine, about a microsecond each)
# SQLite asks whether a preview query's time is up.
SQLITE_STEPS = 1_000


class _TimedOut:
    """What a query of the preview gives when its time ran out."""


TIMED_OUT = _TimedOut()


@dataclass(frozen=True)
class AudiencePreview:
    """How many contacts a condition matches, a few of them, and what looks wrong.

    `count` is None when counting timed out; `count_capped` means there are
    more than `count`. `sample` is None when even the sample timed out."""

    count: int | None
    count_capped: bool
    sample: list[Contact] | None
    unknown_attributes: list[str] = field(default_factory=list)
    unknown_events: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        if self.count is None:
            if self.sample:
                return "Count timed out, sample shown."
            return "Count timed out."
        if self.count_capped:
            return f"More than {self.count:,} contacts."
        return f"{self.count:,} contact{'' if self.count == 1 else 's'}."

    @property
    def warnings(self) -> list[str]:
        return [
            *(f"No contact has attribute “{path}”." for path in self.unknown_attributes),
            *(f"No contact has done event “{name}”." for name in self.unknown_events),
        ]


def audience_preview(
    *,
    tree,
    segment=None,
    sample_size=SAMPLE_SIZE,
    timeout_ms=None,
    count_cap=COUNT_CAP,
) -> AudiencePreview:
    """Count (up to `count_cap`) and sample the contacts matching `tree`, and
    name the attributes and events it tests that no contact has.

    Refuses a tree `conditions_validate` refuses (ConditionError), `segment`
    being the segment the tree is written for. Each query runs under a
    timeout of `timeout_ms` (PREVIEW_TIMEOUT_MS when not given; PostgreSQL's
    statement timeout, or an interrupt on SQLite), and all of them within
    twice that; a query that runs out is reported, not raised. The count and
    the sample come from one pass over the matching contacts; when that pass
    times out, the sample is looked for alone, stopping at the first
    contacts found."""
    conditions_validate(tree, segment=segment)
    budget = _Budget(PREVIEW_TIMEOUT_MS if timeout_ms is None else timeout_ms)
    matching = Contact.objects.filter(compile_conditions(tree)).order_by()
    with transaction.atomic(), budget:
        found = budget.run(lambda: _count_and_newest(matching, count_cap, sample_size))
        if found is TIMED_OUT:
            count = TIMED_OUT
            sample_ids = budget.run(
                lambda: list(matching.values_list("pk", flat=True)[:sample_size])
            )
        else:
            count, sample_ids = found
        unknown_attributes = [
            path
            for path in _attribute_paths(tree)
            if budget.run(lambda p=path: _nobody_has(p)) is True
        ]
        unknown_events = [
            name
            for name in _event_names(tree)
            if budget.run(lambda n=name: not Event.objects.filter(name=n).exists()) is True
        ]
    sample = None
    if sample_ids is not TIMED_OUT:
        # Ten rows by primary key: no need of a timeout.
        sample = list(
            Contact.objects.filter(pk__in=sample_ids).order_by("-pk").only("pk", "email", "user_id")
        )
    timed_out = count is TIMED_OUT
    return AudiencePreview(
        count=None if timed_out else min(count, count_cap),
        count_capped=not timed_out and count > count_cap,
        sample=sample,
        unknown_attributes=unknown_attributes,
        unknown_events=unknown_events,
    )


def _count_and_newest(matching, count_cap, sample_size):
    """(how many contacts match, up to count_cap + 1; the ids of the newest
    `sample_size` of those counted), in one pass on PostgreSQL: a rare
    condition reads the whole table, and should read it once."""
    if connection.vendor != "postgresql":
        ids = matching.order_by("-pk").values_list("pk", flat=True)
        return matching[: count_cap + 1].count(), list(ids[:sample_size])
    sql, params = matching.values("pk")[: count_cap + 1].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), (array_agg(matching.id ORDER BY matching.id DESC))[1:%s] "
            f"FROM ({sql}) AS matching (id)",
            [sample_size, *params],
        )
        count, ids = cursor.fetchone()
    return count, ids or []


class _Budget:
    """Runs each query of a preview with a timeout of `timeout_ms`, or of
    what is left of twice that for all of them."""

    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.ends = time.monotonic() + 2 * timeout_ms / 1000
        self.before = None

    def __enter__(self):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('statement_timeout')")
                (self.before,) = cursor.fetchone()
        return self

    def __exit__(self, *exc_info):
        # Within a longer transaction of the caller's, its own timeout comes back.
        if self.before is not None:
            self._set(self.before)

    def _set(self, timeout):
        with connection.cursor() as cursor:
            # SET LOCAL: it ends with the transaction, whatever happens.
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout)])

    def run(self, query):
        left = int((self.ends - time.monotonic()) * 1000)
        if left < 1:
            return TIMED_OUT
        if connection.vendor == "sqlite":
            return self._run_on_sqlite(query, min(self.timeout_ms, left))
        if connection.vendor != "postgresql":
            return query()
        self._set(min(self.timeout_ms, left))
        try:
            # A savepoint keeps the transaction usable after a cancelled query.
            with transaction.atomic():
                return query()
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED:
                return TIMED_OUT
            raise

    @staticmethod
    def _run_on_sqlite(query, timeout_ms):
        """SQLite has no statement timeout: a progress handler, called every
        SQLITE_STEPS steps of its virtual machine, interrupts the query once
        its time is up (the embedded default's answer to the same budget)."""
        connection.ensure_connection()
        raw = connection.connection
        deadline = time.monotonic() + timeout_ms / 1000
        raw.set_progress_handler(lambda: time.monotonic() > deadline, SQLITE_STEPS)
        try:
            with transaction.atomic():
                return query()
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlite_errorname", None) == "SQLITE_INTERRUPT":
                return TIMED_OUT
            raise
        finally:
            raw.set_progress_handler(None, 0)


def _nobody_has(path):
    """Whether no contact has the attribute at `path` (set to anything, even null).

    A key test (PostgreSQL's `?`) that stops at the first contact having it."""
    *parents, key = path.split(".")
    if any(part.isdigit() for part in parents):
        # The ORM would read a digit as a list index; the language never does.
        return False
    lookup = "__".join(["attributes", *parents, "has_key"])
    return not Contact.objects.filter(**{lookup: key}).exists()


def _leaves(tree):
    if not tree:
        return
    for group in ("all", "any"):
        if group in tree:
            for child in tree[group]:
                yield from _leaves(child)
            return
    if "not" in tree:
        yield from _leaves(tree["not"])
        return
    yield tree


def _attribute_paths(tree):
    return list(dict.fromkeys(leaf["attribute"] for leaf in _leaves(tree) if "attribute" in leaf))


def _event_names(tree):
    return list(dict.fromkeys(leaf["event"] for leaf in _leaves(tree) if "event" in leaf))


def oldest_undispatched_event() -> datetime | None:
    """When the oldest event not yet dispatched to journeys was received, or
    None when every event has been. Reads the first entry of the partial index
    event_undispatched (the lowest id is the oldest received)."""
    return (
        Event.objects.filter(dispatched=False)
        .order_by("pk")
        .values_list("received_at", flat=True)
        .first()
    )


def lists_member_estimates(*, list_ids) -> dict:
    """{list id: about how many members it has}, for lists too big to count
    on every load of a page: PostgreSQL's statistics of the membership table
    (the share of its rows each of its most common lists holds, times its
    rows), one query for all. A list the statistics do not name is left out,
    as is every list on another database."""
    list_ids = list(list_ids)
    if not list_ids or connection.vendor != "postgresql":
        return {}
    table = ListMembership._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT common.list_id, round(common.share * greatest(c.reltuples, 0))::bigint
            FROM pg_stats s
            CROSS JOIN LATERAL unnest(s.most_common_vals::text::bigint[], s.most_common_freqs)
                AS common (list_id, share)
            JOIN pg_class c ON c.oid = to_regclass(%s)
            WHERE s.schemaname = current_schema() AND s.tablename = %s
              AND s.attname = 'contact_list_id' AND common.list_id = ANY(%s)
            """,
            [table, table, list_ids],
        )
        return dict(cursor.fetchall())
