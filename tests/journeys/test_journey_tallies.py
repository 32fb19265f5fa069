"""JourneyTally: the database counts entries, ends, conversions, steps and
branches once, whatever moved the contact; compaction keeps every sum."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from contacts.models import Contact
from contacts.services import event_track
from contacts.services.events import events_dispatch
from journeys.models import Enrollment, JourneyTally, StepRun, WaitForEventStep
from journeys.services.editing import enrollments_exit, journey_set_state
from journeys.services.tallies import journey_tallies_compact
from journeys.tallies import FOLD_LOCK, TRIGGERS
from messaging.models import MessageTally
from tests.databases import PARALLEL_WRITERS
from tests.factories import ContactFactory, EnrollmentFactory, JourneyFactory
from tests.journeys.test_holdout import advance_all, enter, promo  # noqa: F401 (a fixture)
from tests.journeys.test_welcome_series import advance, track

pytestmark = pytest.mark.django_db(transaction=True)


def counts(journey, **filters) -> dict:
    """{metric: n} of the journey's tallies (delta and folded rows alike)."""
    rows = (
        JourneyTally.objects.filter(journey=journey, **filters)
        .values_list("metric")
        .annotate(n=Sum("n"))
    )
    return {metric: n for metric, n in rows if n}


def per_step(journey, metric) -> dict:
    """{step key: n} of one per-step metric."""
    keys = dict(journey.steps.values_list("pk", "key"))
    rows = (
        JourneyTally.objects.filter(journey=journey, metric=metric)
        .values_list("step_id")
        .annotate(n=Sum("n"))
    )
    return {keys[step_id]: n for step_id, n in rows if n}


@pytest.mark.postgresql(reason="PostgreSQL's statement-level triggers, read from pg_trigger")
def test_the_triggers_are_installed():
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        installed = {name for (name,) in cursor.fetchall()}
    assert {name for name, _ in TRIGGERS} <= installed


def test_the_engine_counts_the_entry_each_step_the_branch_and_the_end_once(
    welcome_series, nia, api_client, smtp_server, run_worker
):
    # Given Nia signs up, gets the welcome email, waits, and is nudged
    track(api_client, "nia@example.com", "signed_up")
    advance(run_worker)
    with time_machine.travel(timezone.now() + timedelta(days=2, minutes=1)):
        advance(run_worker)

    # Then her passage counts once in each figure
    assert len(smtp_server.messages) == 2
    assert counts(welcome_series, step_id=None) == {"entered": 1, "completed": 1}
    assert per_step(welcome_series, "reached") == {
        "welcome": 1, "wait": 1, "created-project": 1, "nudge": 1, "done": 1,
    }  # fmt: skip
    assert per_step(welcome_series, "branch:no") == {"created-project": 1}
    steps = welcome_series.step_map
    sent = dict(
        MessageTally.objects.filter(origin="journey", metric="sent")
        .values_list("origin_step_id")
        .annotate(n=Sum("n"))
    )
    assert sent == {steps["welcome"].pk: 1, steps["nudge"].pk: 1}


def test_retries_and_a_wait_for_an_event_waiting_on_do_not_count_as_reaching_the_step():
    journey = JourneyFactory()
    wait = WaitForEventStep.objects.create(journey=journey, key="buy", event_name="purchase")
    enrollment = EnrollmentFactory(journey=journey, current_step=wait)
    now = timezone.now()

    def run(outcome, branch=""):
        StepRun.objects.create(enrollment=enrollment, step=wait, sequence=0, outcome=outcome,
                               branch=branch, started_at=now, finished_at=now)  # fmt: skip

    run("retry")
    run("waiting")
    run("waiting")
    run("continued", branch="event")

    assert per_step(journey, "reached") == {"buy": 1}
    assert per_step(journey, "branch:event") == {"buy": 1}


def test_exits_count_by_their_kind_whatever_wrote_them(smtp_server):
    journey = JourneyFactory(exit_event_name="cancelled")
    contacts = [ContactFactory() for _ in range(6)]
    passages = [EnrollmentFactory(journey=journey, contact=c) for c in contacts]
    alice = get_user_model().objects.create(username="alice")

    # An exit event, staff exiting two, archiving the journey for the rest
    event_track(email=contacts[0].email, name="cancelled")
    events_dispatch()
    enrollments_exit(
        enrollments=Enrollment.objects.filter(pk__in=[passages[1].pk, passages[2].pk]),
        reason="exited from the admin by alice",
        kind=Enrollment.ExitKind.ADMIN,
    )
    journey_set_state(journey=journey, state="archived", actor=alice)

    assert counts(journey) == {
        "entered": 6, "exited:exit_event": 1, "exited:admin": 2, "exited:archived": 3,
    }  # fmt: skip


def test_an_exit_counts_by_its_kind_whatever_its_words(db):
    # Given passages that exit for reasons worded as the caller likes
    journey = JourneyFactory()
    passages = [EnrollmentFactory(journey=journey, contact=ContactFactory()) for _ in range(3)]

    enrollments_exit(
        enrollments=Enrollment.objects.filter(pk=passages[0].pk),
        reason="Cleaned up after the March incident",
        kind=Enrollment.ExitKind.ADMIN,
    )
    enrollments_exit(
        enrollments=Enrollment.objects.filter(pk__in=[passages[1].pk, passages[2].pk]),
        reason="exited from the admin by alice",  # the words an admin exit once had
        kind=Enrollment.ExitKind.AUDIENCE,
    )

    # Then the tallies count them by their kind
    assert counts(journey) == {"entered": 3, "exited:admin": 1, "exited:audience": 2}


def test_conversions_and_the_holdout_are_counted_for_the_lift(promo, smtp_server):  # noqa: F811
    # Given 80 contacts through a journey with a 20 % holdout
    contacts = Contact.objects.bulk_create(Contact(email=f"g{i}@example.com") for i in range(80))
    enter(promo, contacts)
    advance_all()
    held = Enrollment.objects.filter(holdout=True).count()
    treated = len(contacts) - held
    assert held and treated

    # When half of each group converts
    for contact in contacts[::2]:
        event_track(email=contact.email, name="purchase")
    events_dispatch()
    converted = Enrollment.objects.filter(goal_reached_at__isnull=False)
    held_converted = converted.filter(holdout=True).count()

    # Then the tallies agree with the passages, whichever group they are in
    journey = promo.journey
    assert counts(journey, step_id=None) == {
        "entered": 80,
        "completed": treated,
        "exited:holdout": held,
        "holdout": held,
        "converted": converted.count() - held_converted,
        "holdout_converted": held_converted,
    }
    assert per_step(journey, "branch:treatment") == {"control": treated}
    assert per_step(journey, "branch_converted:treatment") == {
        "control": converted.count() - held_converted
    }


def test_compaction_keeps_every_sum_and_leaves_one_row_per_key_and_day():
    journey = JourneyFactory()
    for _ in range(5):
        EnrollmentFactory(journey=journey)
    Enrollment.objects.filter(journey=journey).update(state="completed", finished_at=timezone.now())
    before = counts(journey)
    assert JourneyTally.objects.filter(journey=journey).count() > len(before)

    folded = journey_tallies_compact()

    assert folded > 0
    assert counts(journey) == before == {"entered": 5, "completed": 5}
    rows = JourneyTally.objects.filter(journey=journey)
    assert not rows.filter(folded=False).exists()
    keys = list(rows.values_list("step_id", "day", "metric"))
    assert len(keys) == len(set(keys))


@pytest.mark.postgresql(reason=PARALLEL_WRITERS)
def test_compaction_while_contacts_enter_loses_and_doubles_nothing():
    journey = JourneyFactory()
    contacts = Contact.objects.bulk_create(Contact(email=f"c{i}@example.com") for i in range(400))
    done = threading.Event()

    def enter_in_small_transactions():
        try:
            for start in range(0, len(contacts), 5):
                with transaction.atomic():
                    for contact in contacts[start : start + 5]:
                        EnrollmentFactory(journey=journey, contact=contact)
        finally:
            done.set()
            connection.close()

    writer = threading.Thread(target=enter_in_small_transactions)
    writer.start()
    passes = 0
    while not done.is_set() or passes == 0:
        journey_tallies_compact()
        passes += 1
    writer.join()
    journey_tallies_compact()

    assert Enrollment.objects.filter(journey=journey).count() == 400
    assert counts(journey) == {"entered": 400}
    assert not JourneyTally.objects.filter(folded=False).exists()


@pytest.mark.postgresql(reason="PostgreSQL's advisory lock")
def test_a_second_compaction_at_the_same_time_steps_aside():
    journey = JourneyFactory()
    EnrollmentFactory(journey=journey)
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FOLD_LOCK])
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    other = threading.Thread(target=hold_the_lock)
    other.start()
    holding.wait(30)
    try:
        assert journey_tallies_compact() is None
    finally:
        release.set()
        other.join()
    assert journey_tallies_compact() == 1
    assert counts(journey) == {"entered": 1}
