"""Maintained tallies: counts kept by the database as rows change, the shape
messaging's and journeys' tallies share.

A tally table holds rows (key columns…, day, metric, n, folded). Triggers on
the counted table append *delta* rows (`folded` false): on PostgreSQL one
statement-level trigger per INSERT or UPDATE statement, reading the
statement's transition tables, writes one row per key, day and metric the
statement touched; on SQLite (the embedded default) row-level triggers write
the same rows one changed row at a time. No counter row is ever updated, so
workers writing at once never wait on each other. Compaction (tallies_compact)
later replaces the delta rows with one row per key, day and metric. A figure
is the sum of `n`, whichever rows it finds, so it is exact between folds.

What a row counts in is described by slots: each slot is a metric the row
is in (an SQL expression over the row, NULL when in none) and the time whose
UTC day it counts on. A new row counts +1 in each slot's metric; an updated
row whose slot changed metric or day counts -1 in the old one (on the old
day) and +1 in the new. Deleting rows takes nothing away.
"""

from dataclasses import dataclass

from django.db import connection, transaction


@dataclass(frozen=True)
class Slot:
    # SQL over the row `{r}`: the metric the row counts in, or NULL.
    metric: str
    # SQL over the row `{r}`: when, a timestamp whose UTC day the count goes to.
    at: str
    # False for a slot an UPDATE never changes (e.g. the time a row was made).
    changes: bool = True


@dataclass(frozen=True)
class Tally:
    """The triggers that keep `table`'s counts of `source` rows."""

    name: str
    source: str
    table: str
    # {tally column: SQL over the row `{r}`} of the key the counts are kept by.
    keys: dict
    slots: tuple
    # SQL over the row `{r}`: whether it is counted at all.
    counted: str = "TRUE"
    # SQL over the row `{r}`: whether it may count in a slot that changes
    # (cheap column tests, so an UPDATE passes the other rows by at once).
    may_change: str = "TRUE"

    @property
    def key_columns(self):
        return ", ".join(self.keys)

    def key_values(self, r):
        return ", ".join(expr.format(r=r) for expr in self.keys.values())

    def columns(self):
        return f"{self.key_columns}, day, metric, n, folded"


def _postgres_function(name, body):
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body};\nRETURN NULL;\nEND\n$$"
    )


def _postgres_trigger(name, table, event, transition):
    return (
        f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {transition} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
    )


def _utc_day_postgres(expr):
    return f"(({expr}) AT TIME ZONE 'UTC')::date"


def postgres_insert(tally: Tally) -> list[str]:
    """The statement-level AFTER INSERT trigger (function, trigger)."""
    name = f"{tally.name}_insert"
    slots = ", ".join(f"({s.metric.format(r='r')}, {s.at.format(r='r')})" for s in tally.slots)
    body = (
        f"INSERT INTO {tally.table} ({tally.columns()})\n"
        f"SELECT {tally.key_values('r')}, {_utc_day_postgres('s.at')}, s.metric, count(*), false\n"
        f"FROM new_rows r CROSS JOIN LATERAL (VALUES {slots}) AS s(metric, at)\n"
        f"WHERE ({tally.counted.format(r='r')}) AND s.metric IS NOT NULL AND s.at IS NOT NULL\n"
        f"GROUP BY {', '.join(str(i + 1) for i in range(len(tally.keys) + 2))}"
    )
    return [
        _postgres_function(name, body),
        _postgres_trigger(name, tally.source, "INSERT", "NEW TABLE AS new_rows"),
    ]


def postgres_update(tally: Tally) -> list[str]:
    """The statement-level AFTER UPDATE trigger (function, trigger).

    Every old row counts -1 and every new row +1 in each of its slots, summed
    per key, day and metric; what did not change cancels out and is not
    written. No join of the old rows to the new: a function's plan is made
    once, for the first statement's size, and a join planned for one row
    would run as a nested loop over a later statement's thousands."""
    name = f"{tally.name}_update"
    slots = [s for s in tally.slots if s.changes]

    def counts(rows, alias, d):
        values = ", ".join(f"({s.metric.format(r=alias)}, {s.at.format(r=alias)})" for s in slots)
        keys = ", ".join(
            f"{expr.format(r=alias)} AS {column}" for column, expr in tally.keys.items()
        )
        return (
            f"SELECT {keys}, {_utc_day_postgres('s.at')} AS day, s.metric, {d} AS d\n"
            f"FROM {rows} {alias} CROSS JOIN LATERAL (VALUES {values}) AS s(metric, at)\n"
            f"WHERE ({tally.counted.format(r=alias)}) AND ({tally.may_change.format(r=alias)})\n"
            "  AND s.metric IS NOT NULL AND s.at IS NOT NULL"
        )

    body = (
        f"INSERT INTO {tally.table} ({tally.columns()})\n"
        f"SELECT {tally.key_columns}, day, metric, sum(d), false FROM (\n"
        f"{counts('old_rows', 'o', -1)}\nUNION ALL\n{counts('new_rows', 'r', 1)}\n) AS c\n"
        f"GROUP BY {tally.key_columns}, day, metric HAVING sum(d) <> 0"
    )
    return [
        _postgres_function(name, body),
        _postgres_trigger(
            name, tally.source, "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"
        ),
    ]


def sqlite_insert(tally: Tally) -> list[str]:
    """The row-level AFTER INSERT trigger for SQLite."""
    slots = " UNION ALL ".join(
        f"SELECT {s.metric.format(r='NEW')} AS metric, {s.at.format(r='NEW')} AS at"
        for s in tally.slots
    )
    return [
        f"CREATE TRIGGER {tally.name}_insert AFTER INSERT ON {tally.source}\n"
        f"WHEN {tally.counted.format(r='NEW')}\nBEGIN\n"
        f"INSERT INTO {tally.table} ({tally.columns()})\n"
        f"SELECT {tally.key_values('NEW')}, date(at), metric, count(*), 0 FROM ({slots})\n"
        f"WHERE metric IS NOT NULL AND at IS NOT NULL GROUP BY date(at), metric;\nEND"
    ]


def sqlite_update(tally: Tally, *, also: str = "") -> list[str]:
    """The row-level AFTER UPDATE trigger for SQLite: fires only when a slot
    changed metric or day, and then counts as the PostgreSQL one does."""
    slots = [s for s in tally.slots if s.changes]
    changed = [
        f"(({s.metric.format(r='OLD')}) IS NOT ({s.metric.format(r='NEW')}) OR "
        f"({s.metric.format(r='NEW')}) IS NOT NULL AND "
        f"date({s.at.format(r='OLD')}) IS NOT date({s.at.format(r='NEW')}))"
        for s in slots
    ]
    rows = []
    for s, differs in zip(slots, changed, strict=True):
        rows.append(
            f"SELECT {s.metric.format(r='OLD')} AS metric, {s.at.format(r='OLD')} AS at, -1 AS d "
            f"WHERE {differs}"
        )
        rows.append(f"SELECT {s.metric.format(r='NEW')}, {s.at.format(r='NEW')}, 1 WHERE {differs}")
    statements = (
        f"INSERT INTO {tally.table} ({tally.columns()})\n"
        f"SELECT {tally.key_values('NEW')}, date(at), metric, sum(d), 0 "
        f"FROM ({' UNION ALL '.join(rows)})\n"
        f"WHERE metric IS NOT NULL AND at IS NOT NULL GROUP BY date(at), metric "
        f"HAVING sum(d) <> 0;"
    )
    if also:
        statements = f"{statements}\n{also};"
    return [
        f"CREATE TRIGGER {tally.name}_update AFTER UPDATE ON {tally.source}\n"
        f"WHEN ({tally.counted.format(r='NEW')}) AND ({' OR '.join(changed)})\nBEGIN\n"
        f"{statements}\nEND"
    ]


def backfill(tally: Tally, vendor: str) -> str:
    """SQL counting the rows `tally.source` already holds, as its INSERT
    trigger would have (for the migration that installs the triggers)."""
    day = _utc_day_postgres("at") if vendor == "postgresql" else "date(at)"
    folded = "true" if vendor == "postgresql" else "1"
    keys = ", ".join(f"{expr.format(r='r')} AS {column}" for column, expr in tally.keys.items())
    if vendor != "postgresql":
        keys = keys.replace("NULL::bigint", "NULL")
    rows = " UNION ALL ".join(
        f"SELECT {keys}, {s.metric.format(r='r')} AS metric, {s.at.format(r='r')} AS at "
        f"FROM {tally.source} r WHERE {tally.counted.format(r='r')}"
        for s in tally.slots
    )
    return (
        f"INSERT INTO {tally.table} ({tally.columns()})\n"
        f"SELECT {tally.key_columns}, {day}, metric, count(*), {folded} FROM ({rows}) AS counted\n"
        f"WHERE metric IS NOT NULL AND at IS NOT NULL GROUP BY {tally.key_columns}, {day}, metric"
    )


def drop_triggers(vendor, names_and_tables) -> list[str]:
    """SQL removing the triggers [(name, table)] (and on PostgreSQL their functions)."""
    if vendor == "postgresql":
        return [
            sql
            for name, table in names_and_tables
            for sql in (
                f"DROP TRIGGER IF EXISTS {name} ON {table}",
                f"DROP FUNCTION IF EXISTS {name}()",
            )
        ]
    return [f"DROP TRIGGER IF EXISTS {name}" for name, _ in names_and_tables]


def run_sql(schema_editor, statements):
    for sql in statements:
        schema_editor.execute(sql, params=None)


# --- folding ------------------------------------------------------------------------


def tallies_compact(*, table: str, keys: tuple, locate: tuple, lock: int) -> int | None:
    """Fold `table`'s delta rows into one row per key, day and metric; how many
    delta rows were folded, or None if another process is compacting it now.

    The rows rewritten are those of every (`locate`…) pair that has delta rows
    (e.g. a journey and a day): each such pair's rows are deleted and their
    sums inserted, folded, in one statement. Rows inserted while it runs are
    not in its snapshot, so they are neither deleted nor summed: they stay
    delta rows for the next fold, and no count is lost or doubled. A
    transaction-level advisory lock (`lock`) keeps two schedulers from
    folding the same table at once.
    """
    key_columns = ", ".join(keys)
    where = " AND ".join(f"t.{column} = touched.{column}" for column in locate)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock])
            if not cursor.fetchone()[0]:
                return None
            cursor.execute(
                f"""
                WITH touched AS (
                    SELECT DISTINCT {", ".join(locate)} FROM {table} WHERE NOT folded
                ), gone AS (
                    DELETE FROM {table} t USING touched WHERE {where}
                    RETURNING {", ".join(f"t.{c}" for c in keys)}, t.day, t.metric, t.n, t.folded
                ), folded AS (
                    INSERT INTO {table} ({key_columns}, day, metric, n, folded)
                    SELECT {key_columns}, day, metric, sum(n), true FROM gone
                    GROUP BY {key_columns}, day, metric HAVING sum(n) <> 0
                )
                SELECT count(*) FILTER (WHERE NOT folded) FROM gone
                """
            )
            return cursor.fetchone()[0]
        # SQLite: the DELETE takes the database's write lock first, so nothing
        # is written between reading the rows and writing their sums.
        cursor.execute(
            f"DELETE FROM {table} AS t WHERE EXISTS (SELECT 1 FROM {table} AS touched "
            f"WHERE NOT touched.folded AND {where}) "
            f"RETURNING {key_columns}, day, metric, n, folded"
        )
        sums, deltas = {}, 0
        for *key, day, metric, n, folded in cursor.fetchall():
            sums[(*key, day, metric)] = sums.get((*key, day, metric), 0) + n
            deltas += not folded
        rows = [(*key, n) for key, n in sums.items() if n]
        if rows:
            placeholders = ", ".join(["%s"] * (len(keys) + 3))
            cursor.executemany(
                f"INSERT INTO {table} ({key_columns}, day, metric, n, folded) "
                f"VALUES ({placeholders}, %s)",
                [(*row, True) for row in rows],
            )
        return deltas
