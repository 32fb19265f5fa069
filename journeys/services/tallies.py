"""Compacting the journey and message tallies (see contacts.tallies)."""

from dataclasses import dataclass

from contacts.tallies import tallies_compact
from journeys.tallies import FOLD_LOCK
from messaging.services.tallies import message_tallies_compact


def journey_tallies_compact() -> int | None:
    """Fold JourneyTally's delta rows into one row per key, day and metric;
    how many delta rows were folded (None: another process is at it)."""
    return tallies_compact(
        table="journeys_journeytally",
        keys=("journey_id", "step_id"),
        locate=("journey_id", "day"),
        lock=FOLD_LOCK,
    )


@dataclass(frozen=True)
class Compaction:
    # Delta rows folded; None where another process was compacting that table.
    journeys: int | None
    messages: int | None


def tallies_compact_all() -> Compaction:
    """Compact both tallies, each in its own transaction: what the scheduler
    runs every WAYMARK_TALLY_COMPACT_INTERVAL seconds, and `compact_tallies`."""
    return Compaction(journeys=journey_tallies_compact(), messages=message_tallies_compact())
