"""Read paths of the contacts app that are more than one obvious query."""

from dataclasses import dataclass, field

from django.db import OperationalError, connection, transaction

from contacts.conditions import compile_conditions, conditions_validate
from contacts.models import Contact, Event

# A live count answers "about how big" while the condition is being written:
# counting stops here ("more than 100,000") instead of reading a million rows.
COUNT_CAP = 100_000
SAMPLE_SIZE = 10
# Each query of a preview gets this long before PostgreSQL cancels it, so a
# condition that has to read every contact cannot hold the page.
PREVIEW_TIMEOUT_MS = 2_000
# PostgreSQL's error code for a statement cancelled by statement_timeout.
QUERY_CANCELED = "57014"


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
    being the segment the tree is written for. Every query runs under a
    statement timeout on PostgreSQL; one that runs out is reported, not
    raised (`timeout_ms`: PREVIEW_TIMEOUT_MS when not given)."""
    conditions_validate(tree, segment=segment)
    timeout_ms = PREVIEW_TIMEOUT_MS if timeout_ms is None else timeout_ms
    matching = Contact.objects.filter(compile_conditions(tree)).order_by()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # SET LOCAL lasts until this transaction ends, whatever happens in it.
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [str(timeout_ms)]
                )
        count = _timed(lambda: matching[: count_cap + 1].count())
        sample = _timed(
            lambda: list(matching.order_by("-pk").only("pk", "email", "user_id")[:sample_size])
        )
        unknown_attributes = [
            path for path in _attribute_paths(tree) if _timed(lambda p=path: _nobody_has(p)) is True
        ]
        unknown_events = [
            name
            for name in _event_names(tree)
            if _timed(lambda n=name: not Event.objects.filter(name=n).exists()) is True
        ]
    timed_out = count is TIMED_OUT
    return AudiencePreview(
        count=None if timed_out else min(count, count_cap),
        count_capped=not timed_out and count > count_cap,
        sample=None if sample is TIMED_OUT else sample,
        unknown_attributes=unknown_attributes,
        unknown_events=unknown_events,
    )


def _timed(query):
    """The query's answer, or TIMED_OUT if PostgreSQL cancelled it (the
    savepoint keeps the transaction usable for the next query)."""
    try:
        with transaction.atomic():
            return query()
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED:
            return TIMED_OUT
        raise


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
