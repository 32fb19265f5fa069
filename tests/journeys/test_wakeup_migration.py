"""Migration 0017 moves the event that woke an enrollment from the enrollment
row to a Wakeup, so contacts woken before the upgrade still go on."""

import pytest
from django.utils import timezone

BEFORE = [("journeys", "0016_fewer_indexes_on_hot_tables")]
AFTER = [("journeys", "0017_wakeups")]


@pytest.mark.django_db(transaction=True)
def test_a_contact_woken_before_the_upgrade_keeps_its_wake_up(migrator):
    apps = migrator.loader.project_state(BEFORE).apps
    Journey = apps.get_model("journeys", "Journey")
    Contact = apps.get_model("contacts", "Contact")
    Enrollment = apps.get_model("journeys", "Enrollment")
    journey = Journey.objects.create(name="Cart")
    now = timezone.now()

    def waiting(email, **fields):
        contact = Contact.objects.create(email=email)
        return Enrollment.objects.create(
            journey=journey, contact=contact, state="waiting", entered_at=now,
            wait_event_name="purchase", wait_since=now, **fields,
        )  # fmt: skip

    woken = waiting("ada@example.com", wait_event_id=42)
    waiting("bob@example.com")

    migrator.loader.build_graph()
    migrator.migrate(AFTER)

    Wakeup = migrator.loader.project_state(AFTER).apps.get_model("journeys", "Wakeup")
    assert list(Wakeup.objects.values_list("enrollment_id", "event_id")) == [(woken.pk, 42)]
