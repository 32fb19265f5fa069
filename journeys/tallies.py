"""The triggers that keep JourneyTally (see contacts.tallies for the shape).

From enrollments: `entered` on the day a contact entered; `completed`,
`failed` or `exited:<kind>` on the day the passage ended; `converted` or
`holdout_converted` on the day the goal was reached; `holdout` on the day a
contact was drawn into the control group. A passage that ends, converts or
is held out counts once, whatever wrote it (the engine, an exit event, staff,
archiving, forgetting a contact); one whose end is undone (staff retrying a
failed passage) is taken off again.

From step runs (step-level rows): `reached` when a step has run for a
contact, its retries not counted, and a wait for an event counted when the
event came or the wait ended rather than each time it waits on;
`branch:<label>` for the way it went on (a split's branch, yes or no, a
holdout's treatment, a wait's event or timeout). When a passage converts,
`branch_converted:<label>` for every way it had taken.

The migrations that install these triggers run the SQL below; changing it
needs a new migration that installs it again (and an older migration that
ran other SQL keeps a frozen copy of it: EXIT_KIND_FROM_REASON).
"""

from contacts.tallies import (
    Slot,
    Tally,
    backfill,
    drop_triggers,
    postgres_insert,
    postgres_update,
    run_sql,
    sqlite_insert,
    sqlite_update,
)

# Why a contact left: Enrollment.exit_kind, which every exit sets.
EXIT_KIND = "COALESCE(NULLIF({r}.exit_kind, ''), 'other')"

# How the triggers of migration 0020, before Enrollment.exit_kind, read why a
# contact left from the exit_reason texts Waymark wrote; migration 0021
# fills exit_kind of the passages that had exited with it. Frozen: it
# describes the texts of those releases.
EXIT_KIND_FROM_REASON = """CASE
    WHEN {r}.holdout THEN 'holdout'
    WHEN {r}.exit_reason LIKE 'exit event:%' THEN 'exit_event'
    WHEN {r}.exit_reason = 'no longer in the journey''s audience' THEN 'audience'
    WHEN {r}.exit_reason = 'The journey was archived.' THEN 'archived'
    WHEN {r}.exit_reason = 'contact forgotten' THEN 'forgotten'
    WHEN {r}.exit_reason LIKE 'exited from the admin%' THEN 'admin'
    ELSE 'other' END"""


def enrollment_tally(exit_kind: str = EXIT_KIND) -> Tally:
    """The passages' tally, reading why a contact left with `exit_kind`."""
    ended = f"""CASE {{r}}.state
    WHEN 'completed' THEN 'completed'
    WHEN 'failed' THEN 'failed'
    WHEN 'exited' THEN 'exited:' || ({exit_kind}) END"""
    return Tally(
        name="journeys_enrollment_tally",
        source="journeys_enrollment",
        table="journeys_journeytally",
        keys={"journey_id": "{r}.journey_id", "step_id": "NULL::bigint"},
        slots=(
            Slot(metric="'entered'", at="{r}.entered_at", changes=False),
            Slot(metric=ended, at="COALESCE({r}.finished_at, CURRENT_TIMESTAMP)"),
            Slot(
                metric="CASE WHEN {r}.goal_reached_at IS NULL THEN NULL "
                "WHEN {r}.holdout THEN 'holdout_converted' ELSE 'converted' END",
                at="{r}.goal_reached_at",
            ),
            Slot(
                metric="CASE WHEN {r}.holdout THEN 'holdout' END",
                at="COALESCE({r}.finished_at, CURRENT_TIMESTAMP)",
            ),
        ),
        # An open passage that has not converted is in no slot an UPDATE changes.
        may_change="{r}.state NOT IN ('active', 'waiting') OR {r}.goal_reached_at IS NOT NULL",
    )


ENROLLMENT_TALLY = enrollment_tally()

# A passage that reached the goal: every way it had taken counts a conversion.
# Row-level on PostgreSQL too, for the few updates that set the goal: the
# WHEN clause is checked without calling the function, and `UPDATE OF`
# leaves every statement that does not set goal_reached_at alone (the engine's).
BRANCH_CONVERTED_POSTGRES = [
    """CREATE OR REPLACE FUNCTION journeys_enrollment_tally_converted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
INSERT INTO journeys_journeytally (journey_id, step_id, day, metric, n, folded)
SELECT NEW.journey_id, run.step_id, (NEW.goal_reached_at AT TIME ZONE 'UTC')::date,
       'branch_converted:' || run.branch, count(*), false
FROM journeys_steprun run
WHERE run.enrollment_id = NEW.id AND run.branch <> '' AND run.step_id IS NOT NULL
GROUP BY run.step_id, run.branch;
RETURN NULL;
END
$$""",
    "CREATE TRIGGER journeys_enrollment_tally_converted "
    "AFTER UPDATE OF goal_reached_at ON journeys_enrollment FOR EACH ROW "
    "WHEN (OLD.goal_reached_at IS NULL AND NEW.goal_reached_at IS NOT NULL) "
    "EXECUTE FUNCTION journeys_enrollment_tally_converted()",
]

BRANCH_CONVERTED_SQLITE = """INSERT INTO journeys_journeytally
    (journey_id, step_id, day, metric, n, folded)
SELECT NEW.journey_id, run.step_id, date(NEW.goal_reached_at),
       'branch_converted:' || run.branch, count(*), 0
FROM journeys_steprun run
WHERE OLD.goal_reached_at IS NULL AND NEW.goal_reached_at IS NOT NULL
  AND run.enrollment_id = NEW.id AND run.branch <> '' AND run.step_id IS NOT NULL
GROUP BY run.step_id, run.branch"""

# A run that counts the contact at its step: not a retry, and not a wait for
# an event waiting (it counts when the event comes or the wait ends).
REACHED = """CASE WHEN {r}.outcome <> 'retry' AND NOT ({r}.outcome = 'waiting' AND EXISTS (
    SELECT 1 FROM journeys_waitforeventstep w WHERE w.step_ptr_id = {r}.step_id))
    THEN 'reached' END"""

# Summed per step, day and metric first, then joined to the (few) steps.
STEP_RUN_INSERT_POSTGRES = [
    """CREATE OR REPLACE FUNCTION journeys_steprun_tally_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
INSERT INTO journeys_journeytally (journey_id, step_id, day, metric, n, folded)
SELECT s.journey_id, g.step_id, g.day, 'reached', sum(g.n), false
FROM (
    SELECT r.step_id, (r.started_at AT TIME ZONE 'UTC')::date AS day, r.outcome = 'waiting'
           AS waiting, count(*) AS n
    FROM new_rows r WHERE r.outcome <> 'retry' AND r.step_id IS NOT NULL GROUP BY 1, 2, 3
) g JOIN journeys_step s ON s.id = g.step_id
WHERE NOT (g.waiting AND EXISTS (
    SELECT 1 FROM journeys_waitforeventstep w WHERE w.step_ptr_id = g.step_id))
GROUP BY 1, 2, 3;
INSERT INTO journeys_journeytally (journey_id, step_id, day, metric, n, folded)
SELECT s.journey_id, g.step_id, g.day, g.metric, g.n, false
FROM (
    SELECT r.step_id, (r.started_at AT TIME ZONE 'UTC')::date AS day,
           'branch:' || r.branch AS metric, count(*) AS n
    FROM new_rows r WHERE r.branch <> '' AND r.step_id IS NOT NULL GROUP BY 1, 2, 3
) g JOIN journeys_step s ON s.id = g.step_id;
RETURN NULL;
END
$$""",
    "CREATE TRIGGER journeys_steprun_tally_insert AFTER INSERT ON journeys_steprun "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION journeys_steprun_tally_insert()",
]

STEP_RUN_INSERT_SQLITE = [
    f"""CREATE TRIGGER journeys_steprun_tally_insert AFTER INSERT ON journeys_steprun
WHEN NEW.step_id IS NOT NULL
BEGIN
INSERT INTO journeys_journeytally (journey_id, step_id, day, metric, n, folded)
SELECT s.journey_id, NEW.step_id, date(NEW.started_at), m.metric, 1, 0
FROM journeys_step s, (SELECT {REACHED.format(r="NEW")} AS metric
    UNION ALL SELECT CASE WHEN NEW.branch <> '' THEN 'branch:' || NEW.branch END) m
WHERE s.id = NEW.step_id AND m.metric IS NOT NULL;
END"""
]


def _sqlite(sql):
    # SQLite has no typed NULL.
    return sql.replace("NULL::bigint", "NULL")


def enrollment_tally_sql(vendor: str, tally: Tally = ENROLLMENT_TALLY) -> list[str]:
    """The statements that install the passages' tally triggers on `vendor`."""
    if vendor == "postgresql":
        return [*postgres_insert(tally), *postgres_update(tally), *BRANCH_CONVERTED_POSTGRES]
    return [
        _sqlite(sql)
        for sql in (*sqlite_insert(tally), *sqlite_update(tally, also=BRANCH_CONVERTED_SQLITE))
    ]


TRIGGERS = [
    ("journeys_enrollment_tally_insert", "journeys_enrollment"),
    ("journeys_enrollment_tally_update", "journeys_enrollment"),
    ("journeys_enrollment_tally_converted", "journeys_enrollment"),
    ("journeys_steprun_tally_insert", "journeys_steprun"),
]

# pg_try_advisory_xact_lock key of the fold (any number no other lock uses).
FOLD_LOCK = 0x7A11_0002


def step_runs_backfill(vendor) -> str:
    """SQL counting the step runs already recorded, as the triggers would have."""

    def day(expr):
        return f"(({expr}) AT TIME ZONE 'UTC')::date" if vendor == "postgresql" else f"date({expr})"

    folded = "true" if vendor == "postgresql" else "1"
    runs = "journeys_steprun r JOIN journeys_step s ON s.id = r.step_id"
    return f"""INSERT INTO journeys_journeytally (journey_id, step_id, day, metric, n, folded)
SELECT journey_id, step_id, day, metric, count(*), {folded} FROM (
    SELECT s.journey_id, r.step_id, {day("r.started_at")} AS day, {REACHED.format(r="r")} AS metric
    FROM {runs}
    UNION ALL
    SELECT s.journey_id, r.step_id, {day("r.started_at")},
           CASE WHEN r.branch <> '' THEN 'branch:' || r.branch END
    FROM {runs}
    UNION ALL
    SELECT e.journey_id, r.step_id, {day("e.goal_reached_at")}, 'branch_converted:' || r.branch
    FROM journeys_steprun r JOIN journeys_enrollment e ON e.id = r.enrollment_id
    WHERE e.goal_reached_at IS NOT NULL AND r.branch <> '' AND r.step_id IS NOT NULL
) AS counted WHERE metric IS NOT NULL GROUP BY journey_id, step_id, day, metric"""


def count_existing(apps, schema_editor, *, exit_kind=EXIT_KIND):
    """Count the passages and step runs already there, as the triggers would
    have (once, at install)."""
    vendor = schema_editor.connection.vendor
    tally = enrollment_tally(exit_kind)
    run_sql(schema_editor, [backfill(tally, vendor), step_runs_backfill(vendor)])


def install(apps, schema_editor, *, exit_kind=EXIT_KIND):
    """(Re)create the triggers for the database's vendor."""
    vendor = schema_editor.connection.vendor
    run_sql(schema_editor, drop_triggers(vendor, TRIGGERS))
    step_runs = STEP_RUN_INSERT_POSTGRES if vendor == "postgresql" else STEP_RUN_INSERT_SQLITE
    run_sql(schema_editor, [*enrollment_tally_sql(vendor, enrollment_tally(exit_kind)), *step_runs])


def uninstall(apps, schema_editor):
    run_sql(schema_editor, drop_triggers(schema_editor.connection.vendor, TRIGGERS))


# As migration 0020 installed them, before Enrollment.exit_kind.
def count_existing_by_reason(apps, schema_editor):
    count_existing(apps, schema_editor, exit_kind=EXIT_KIND_FROM_REASON)


def install_by_reason(apps, schema_editor):
    install(apps, schema_editor, exit_kind=EXIT_KIND_FROM_REASON)


def exit_kinds_fill(apps, schema_editor):
    """Give the passages that had exited their kind, read from their
    exit_reason as the triggers of 0020 read it (the triggers are off)."""
    run_sql(
        schema_editor,
        [
            "UPDATE journeys_enrollment SET exit_kind = "
            f"{EXIT_KIND_FROM_REASON.format(r='journeys_enrollment')} WHERE state = 'exited'"
        ],
    )
