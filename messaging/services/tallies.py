"""Compacting the message tallies (see contacts.tallies)."""

from contacts.tallies import tallies_compact
from messaging.tallies import FOLD_LOCK


def message_tallies_compact() -> int | None:
    """Fold MessageTally's delta rows into one row per key, day and metric;
    how many delta rows were folded (None: another process is at it)."""
    return tallies_compact(
        table="messaging_messagetally",
        keys=("origin", "origin_step_id", "template_id"),
        locate=("template_id", "day"),
        lock=FOLD_LOCK,
    )
