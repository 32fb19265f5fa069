"""Migration 0008 turns the step links (next, yes, no foreign keys) into
connection rows, keeping where every contact would go."""

import pytest

BEFORE = [("journeys", "0007_start_journey_step")]
AFTER = [("journeys", "0008_connections")]


@pytest.mark.django_db(transaction=True)
def test_links_become_connections_and_a_conditions_next_fills_its_empty_branch(migrator):
    apps = migrator.loader.project_state(BEFORE).apps
    Journey = apps.get_model("journeys", "Journey")
    ContentType = apps.get_model("contenttypes", "ContentType")

    def make(model_name, **fields):
        model = apps.get_model("journeys", model_name)
        ctype, _ = ContentType.objects.get_or_create(app_label="journeys", model=model_name)
        return model.objects.create(polymorphic_ctype_id=ctype.pk, **fields)

    journey = Journey.objects.create(name="Old", trigger_event_name="x")
    done = make("exitstep", journey=journey, key="done", position=9)
    nudge = make("exitstep", journey=journey, key="nudge", position=8)
    send = make("delaystep", journey=journey, key="wait", position=1, next_step_id=done.pk)
    both = make("conditionstep", journey=journey, key="both", position=2,
                yes_step_id=done.pk, no_step_id=nudge.pk)  # fmt: skip
    half = make("conditionstep", journey=journey, key="half", position=3,
                yes_step_id=nudge.pk, next_step_id=done.pk)  # fmt: skip
    bare = make("conditionstep", journey=journey, key="bare", position=4)

    migrator.loader.build_graph()
    migrator.migrate(AFTER)

    Connection = migrator.loader.project_state(AFTER).apps.get_model("journeys", "Connection")
    rows = {(c.step_id, c.label): c.target_id for c in Connection.objects.all()}
    assert rows == {
        (send.pk, "next"): done.pk,
        (both.pk, "yes"): done.pk,
        (both.pk, "no"): nudge.pk,
        (half.pk, "yes"): nudge.pk,
        (half.pk, "no"): done.pk,
    }
    assert not any(step_id == bare.pk for step_id, _ in rows)
