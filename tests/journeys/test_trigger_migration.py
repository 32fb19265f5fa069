"""The migration that gave journeys several triggers keeps each one's trigger."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("journeys", "0014_condition_step_language")]
AFTER = [("journeys", "0015_journey_triggers")]


@pytest.mark.django_db(transaction=True)
def test_each_journeys_trigger_becomes_a_trigger_row():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Journey = old.get_model("journeys", "Journey")
    readers = old.get_model("contacts", "ContactList").objects.create(name="Readers")
    signups = Journey.objects.create(name="Sign-ups", trigger_event_name="signed_up")
    joins = Journey.objects.create(name="Readers", trigger_type="list_join", trigger_list=readers)
    upsell = Journey.objects.create(name="Upsell", trigger_event_name="")
    old.get_model("journeys", "StartJourneyStep").objects.create(
        journey=signups, key="to-upsell", position=1, target=upsell
    )

    executor = MigrationExecutor(connection)
    try:
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps
        triggers = new.get_model("journeys", "JourneyTrigger").objects.order_by("journey__name")
        assert [
            (t.journey.name, t.kind, t.event_name, t.contact_list_id, t.source_journey_id)
            for t in triggers
        ] == [
            ("Readers", "list_join", "", readers.pk, None),
            ("Sign-ups", "event", "signed_up", None, None),
            ("Upsell", "journey", "", None, None),  # its start journey step still starts it
        ]
        assert joins.pk in {t.journey_id for t in triggers}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
