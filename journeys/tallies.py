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

The migration that installs these triggers runs the SQL below; changing it
needs a new migration that installs it again.
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

# Why a contact left, from Enrollment.exit_reason: the reasons Waymark
# writes (journeys.services.*: HOLDOUT_EXIT_REASON, AUDIENCE_EXIT_REASON,
# ARCHIVED_EXIT_REASON, forgetting a contact, the admin's exit action).
EXIT_KIND = """CASE
    WHEN {r}.holdout THEN 'holdout'
    WHEN {r}.exit_reason LIKE 'exit event:%' THEN 'exit_event'
    WHEN {r}.exit_reason = 'no longer in the journey''s audience' THEN 'audience'
    WHEN {r}.exit_reason = 'The journey was archived.' THEN 'archived'
    WHEN {r}.exit_reason = 'contact forgotten' THEN 'forgotten'
    WHEN {r}.exit_reason LIKE 'exited from the admin%' THEN 'admin'
    ELSE 'other' END"""
EXIT_KINDS = ("exit_event", "audience", "archived", "admin", "forgotten", "holdout", "other")

ENDED = """CASE {r}.state
    WHEN 'completed' THEN 'completed'
    WHEN 'failed' THEN 'failed'
    WHEN 'exited' THEN 'exited:' || (EXIT_KIND) END""".replace("EXIT_KIND", EXIT_KIND)

ENROLLMENT_TALLY = Tally(
    name="journeys_enrollment_tally",
    source="journeys_enrollment",
    table="journeys_journeytally",
    keys={"journey_id": "{r}.journey_id", "step_id": "NULL::bigint"},
    slots=(
        Slot(metric="'entered'", at="{r}.entered_at", changes=False),
        Slot(metric=ENDED, at="COALESCE({r}.finished_at, CURRENT_TIMESTAMP)"),
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


ENROLLMENT_TALLY_POSTGRES = [
    *postgres_insert(ENROLLMENT_TALLY),
    *postgres_update(ENROLLMENT_TALLY),
    *BRANCH_CONVERTED_POSTGRES,
]
ENROLLMENT_TALLY_SQLITE = [
    _sqlite(sql)
    for sql in (
        *sqlite_insert(ENROLLMENT_TALLY),
        *sqlite_update(ENROLLMENT_TALLY, also=BRANCH_CONVERTED_SQLITE),
    )
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


def count_existing(apps, schema_editor):
    """Count the passages and step runs already there, as the triggers would
    have (once, at install)."""
    vendor = schema_editor.connection.vendor
    run_sql(schema_editor, [backfill(ENROLLMENT_TALLY, vendor), step_runs_backfill(vendor)])


def install(apps, schema_editor):
    """(Re)create the triggers for the database's vendor."""
    vendor = schema_editor.connection.vendor
    run_sql(schema_editor, drop_triggers(vendor, TRIGGERS))
    if vendor == "postgresql":
        run_sql(schema_editor, [*ENROLLMENT_TALLY_POSTGRES, *STEP_RUN_INSERT_POSTGRES])
    else:
        run_sql(schema_editor, [*ENROLLMENT_TALLY_SQLITE, *STEP_RUN_INSERT_SQLITE])


def uninstall(apps, schema_editor):
    run_sql(schema_editor, drop_triggers(schema_editor.connection.vendor, TRIGGERS))
