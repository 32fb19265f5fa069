"""The triggers that keep MessageTally (see contacts.tallies for the shape).

A message counts once in each metric whose first-time stamp it has (sent,
delivered, opened, clicked, bounced, complained, failed), on that stamp's
UTC day, and in `skipped` on the day it was skipped. A stamp going from
empty to a time counts +1; one cleared again (a re-send clears `failed_at`)
counts -1, so a message re-sent and then sent is sent, not failed. Test
messages count nowhere. The migration that installs these triggers runs the
SQL below; changing it needs a new migration that installs it again.
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

STAMPS = (
    ("sent", "sent_at"),
    ("delivered", "delivered_at"),
    ("opened", "opened_at"),
    ("clicked", "clicked_at"),
    ("bounced", "bounced_at"),
    ("complained", "complained_at"),
    ("failed", "failed_at"),
)

MESSAGE_TALLY = Tally(
    name="messaging_message_tally",
    source="messaging_message",
    table="messaging_messagetally",
    keys={
        "origin": "{r}.origin",
        "origin_step_id": "{r}.origin_step_id",
        "template_id": "{r}.template_id",
    },
    slots=(
        *(
            Slot(
                metric=f"CASE WHEN {{r}}.{column} IS NOT NULL THEN '{metric}' END",
                at=f"{{r}}.{column}",
            )
            for metric, column in STAMPS
        ),
        Slot(
            metric="CASE WHEN {r}.status = 'skipped' THEN 'skipped' END",
            at="{r}.updated_at",
        ),
    ),
    counted="NOT {r}.is_test",
    may_change=" OR ".join(
        [*(f"{{r}}.{column} IS NOT NULL" for _, column in STAMPS), "{r}.status = 'skipped'"]
    ),
)

MESSAGE_TALLY_POSTGRES = [*postgres_insert(MESSAGE_TALLY), *postgres_update(MESSAGE_TALLY)]
MESSAGE_TALLY_SQLITE = [*sqlite_insert(MESSAGE_TALLY), *sqlite_update(MESSAGE_TALLY)]
TRIGGERS = [
    ("messaging_message_tally_insert", "messaging_message"),
    ("messaging_message_tally_update", "messaging_message"),
]

# pg_try_advisory_xact_lock key of the fold (any number no other lock uses).
FOLD_LOCK = 0x7A11_0001


def count_existing(apps, schema_editor):
    """Count the messages already there, as the triggers would have (once, at install)."""
    run_sql(schema_editor, [backfill(MESSAGE_TALLY, schema_editor.connection.vendor)])


def install(apps, schema_editor):
    """(Re)create the triggers for the database's vendor."""
    vendor = schema_editor.connection.vendor
    run_sql(schema_editor, drop_triggers(vendor, TRIGGERS))
    postgres = vendor == "postgresql"
    run_sql(schema_editor, MESSAGE_TALLY_POSTGRES if postgres else MESSAGE_TALLY_SQLITE)


def uninstall(apps, schema_editor):
    run_sql(schema_editor, drop_triggers(schema_editor.connection.vendor, TRIGGERS))
