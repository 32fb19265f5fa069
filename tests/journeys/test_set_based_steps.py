"""The runner advances a batch set-based: a step costs the same number of
queries for a batch of 2N enrollments as for N, and one contact's trouble
stays that contact's."""

import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Contact, ListMembership
from journeys.models import (
    ConditionStep,
    DelayStep,
    Enrollment,
    StartJourneyStep,
    StepRun,
    UpdateContactStep,
)
from journeys.services.graph import step_connect
from journeys.services.runner import enrollments_advance
from journeys.services.scheduling import enrollments_claim_due
from tests.databases import ROW_BY_ROW
from tests.factories import (
    ContactFactory,
    ContactListFactory,
    EnrollmentFactory,
    EventFactory,
    ExitStepFactory,
    JourneyFactory,
)

pytestmark = pytest.mark.django_db


def _delay(journey):
    return DelayStep.objects.create(journey=journey, key="wait", position=1, amount=1, unit="days")


def _attribute_condition(journey):
    return ConditionStep.objects.create(
        journey=journey, key="is-pro", position=1, kind="attribute", attribute="plan",
        operator="eq", value='"pro"',
    )  # fmt: skip


def _event_condition(journey):
    return ConditionStep.objects.create(
        journey=journey, key="made-project", position=1, kind="event_since_entry",
        event_name="project_created",
    )  # fmt: skip


def _increment(journey):
    return UpdateContactStep.objects.create(
        journey=journey, key="score", position=1, action="increment", attribute="score", value="5"
    )


def _add_to_list(journey):
    return UpdateContactStep.objects.create(
        journey=journey, key="join", position=1, action="add_to_list",
        contact_list=ContactListFactory(),
    )  # fmt: skip


def _remove_from_list(journey):
    return UpdateContactStep.objects.create(
        journey=journey, key="leave", position=1, action="remove_from_list",
        contact_list=ContactListFactory(),
    )  # fmt: skip


def _blocklist(journey):
    return UpdateContactStep.objects.create(
        journey=journey, key="block", position=1, action="blocklist"
    )


def _start_journey(journey):
    target = JourneyFactory(name="Other", trigger_event_name="")
    ExitStepFactory(journey=target, key="done", position=1)
    return StartJourneyStep.objects.create(journey=journey, key="start", position=1, target=target)


STEPS = {
    "delay": _delay,
    "attribute condition": _attribute_condition,
    "event condition": _event_condition,
    "increment an attribute": _increment,
    "add to a list": _add_to_list,
    "remove from a list": _remove_from_list,
    "blocklist": _blocklist,
    "start a journey": _start_journey,
}


def _advance_new(step, count):
    """`count` new contacts (half of them pro, with a project) at `step`,
    claimed and advanced; the queries the advance took."""
    for i in range(count):
        contact = ContactFactory(attributes={"plan": "pro" if i % 2 else "free", "score": i})
        EnrollmentFactory(
            journey=step.journey, contact=contact, current_step=step,
            entered_at=timezone.now() - timedelta(hours=1),
        )  # fmt: skip
        if i % 2:
            EventFactory(contact=contact, name="project_created")
            if getattr(step, "contact_list_id", None):
                ListMembership.objects.create(contact=contact, contact_list_id=step.contact_list_id)
    claim = enrollments_claim_due(enqueue=False)
    assert len(claim.enrollment_ids) == count
    with CaptureQueriesContext(connection) as queries:
        counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)
    assert sum(counts.values()) == count
    assert "failed" not in counts and "lease_lost" not in counts
    # Those a start-journey step enrolled elsewhere are not part of the next batch.
    Enrollment.objects.exclude(journey=step.journey).update(next_run_at=None)
    return len(queries)


@pytest.mark.postgresql(reason=ROW_BY_ROW)
@pytest.mark.parametrize("make_step", STEPS.values(), ids=STEPS.keys())
def test_a_step_costs_the_same_queries_for_2n_enrollments_as_for_n(make_step):
    # Given a live journey whose first step is the step type
    step = make_step(JourneyFactory(name="Batch"))
    _advance_new(step, 1)  # fills the process's caches (content types, …)

    # When a batch of N, then one of 2N, contacts is advanced through it
    n = _advance_new(step, 4)
    two_n = _advance_new(step, 8)

    # Then both cost the same number of queries
    assert two_n == n


def test_an_event_condition_branches_each_contact_on_its_own_events():
    # Given contacts at an event condition: one made a project since entering,
    # one only before entering, one never
    journey = JourneyFactory(name="Projects")
    yes = ExitStepFactory(journey=journey, key="yes", position=8)
    no = ExitStepFactory(journey=journey, key="no", position=9)
    condition = ConditionStep.objects.create(
        journey=journey, key="made-project", position=1, kind="event_since_entry",
        event_name="project_created",
    )  # fmt: skip
    step_connect(step=condition, targets={"yes": yes, "no": no})
    entered = timezone.now() - timedelta(hours=1)
    since, before, never = ContactFactory.create_batch(3)
    EventFactory(contact=since, name="project_created", occurred_at=entered + timedelta(minutes=5))
    EventFactory(contact=before, name="project_created", occurred_at=entered - timedelta(days=1))
    EventFactory(contact=never, name="other", occurred_at=entered + timedelta(minutes=5))
    for contact in (since, before, never):
        EnrollmentFactory(
            journey=journey, contact=contact, current_step=condition, entered_at=entered
        )

    # When they are advanced in one batch
    claim = enrollments_claim_due(enqueue=False)
    enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)

    # Then only the one with an event since entering took "yes"
    branches = dict(
        StepRun.objects.filter(step=condition).values_list("enrollment__contact", "branch")
    )
    assert branches == {since.pk: "yes", before.pk: "no", never.pk: "no"}


def test_one_contact_that_breaks_a_step_does_not_hold_back_the_others():
    # Given three contacts at an increment step, one whose score is not a number
    journey = JourneyFactory(name="Scoring")
    increment = _increment(journey)
    ada = ContactFactory(attributes={"score": 1})
    bob = ContactFactory(attributes={"score": "high"})
    cy = ContactFactory(attributes={})
    for contact in (ada, bob, cy):
        EnrollmentFactory(journey=journey, contact=contact, current_step=increment)

    # When they are advanced in one batch
    claim = enrollments_claim_due(enqueue=False)
    counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)

    # Then the two others are scored and went on; Bob waits to retry, with the reason
    assert counts == {"completed": 2, "waiting": 1}
    scores = {c.pk: c.attributes.get("score") for c in Contact.objects.all()}
    assert scores == {ada.pk: 6, bob.pk: "high", cy.pk: 5}
    bob_passage = Enrollment.objects.get(contact=bob)
    assert (bob_passage.state, bob_passage.attempts) == ("waiting", 1)
    assert "not a number" in bob_passage.last_error
    assert bob_passage.current_step_id == increment.pk


def test_a_group_whose_lease_is_lost_for_one_contact_keeps_only_the_others_writes():
    # Given two contacts at a step that sets an attribute, advanced in one batch
    journey = JourneyFactory(name="Scoring")
    step = UpdateContactStep.objects.create(
        journey=journey, key="plan", position=1, action="set", attribute="plan", value='"pro"'
    )
    ada = ContactFactory(email="ada@example.com", attributes={"plan": "free"})
    bob = ContactFactory(email="bob@example.com", attributes={"plan": "free"})
    for contact in (ada, bob):
        EnrollmentFactory(journey=journey, contact=contact, current_step=step)
    claim = enrollments_claim_due(enqueue=False)
    original = UpdateContactStep._update_attributes
    taken_over = []

    def update_while_ada_is_taken_over(self, contacts):
        details = original(self, contacts)
        if not taken_over:
            # ... while another worker takes Ada's enrollment over
            Enrollment.objects.filter(contact=ada).update(lease_token=uuid.uuid4())
            taken_over.append(True)
        return details

    # When the worker advances the batch
    with mock.patch.object(
        UpdateContactStep, "_update_attributes", autospec=True,
        side_effect=update_while_ada_is_taken_over,
    ):  # fmt: skip
        counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)

    # Then Ada's change rolled back with her lost move, and Bob's change and move stand
    ada.refresh_from_db()
    bob.refresh_from_db()
    assert (ada.attributes, bob.attributes) == ({"plan": "free"}, {"plan": "pro"})
    assert counts == {"lease_lost": 1, "completed": 1}
    assert not StepRun.objects.filter(enrollment__contact=ada).exists()
    assert Enrollment.objects.get(contact=ada).current_step_id == step.pk


@pytest.mark.postgresql(reason=ROW_BY_ROW)
def test_moves_through_several_steps_are_written_once_per_enrollment():
    # Given contacts at a score step followed by a condition and a delay
    journey = JourneyFactory(name="Scoring")
    _increment(journey)
    ConditionStep.objects.create(
        journey=journey, key="is-pro", position=2, kind="attribute", attribute="plan",
        operator="eq", value='"pro"',
    )  # fmt: skip
    DelayStep.objects.create(journey=journey, key="wait", position=3, amount=1, unit="days")
    for contact in ContactFactory.create_batch(4):
        EnrollmentFactory(
            journey=journey, contact=contact, current_step=journey.steps.get(position=1)
        )
    claim = enrollments_claim_due(enqueue=False)

    # When the batch goes through the three steps
    with CaptureQueriesContext(connection) as queries:
        counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)

    # Then each contact moved three steps, and the enrollments were written by one UPDATE
    assert counts == {"waiting": 4}
    assert StepRun.objects.filter(enrollment__journey=journey).count() == 12
    updates = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "journeys_enrollment"')]
    assert len(updates) == 1
    runs = StepRun.objects.filter(enrollment__journey=journey).values_list("step__key", "outcome")
    assert sorted(set(runs)) == [
        ("is-pro", "continued"),
        ("score", "continued"),
        ("wait", "waiting"),
    ]
    passages = Enrollment.objects.filter(journey=journey)
    assert set(passages.values_list("state", "sequence", "lease_token")) == {("waiting", 3, None)}


def test_a_lease_lost_after_the_batch_moved_a_contact_on_rolls_the_whole_batch_back():
    # Given two contacts at a score step followed by a condition
    journey = JourneyFactory(name="Scoring")
    score = _increment(journey)
    ConditionStep.objects.create(
        journey=journey, key="is-pro", position=2, kind="attribute", attribute="plan",
        operator="eq", value='"pro"',
    )  # fmt: skip
    ada = ContactFactory(email="ada@example.com", attributes={"score": 1})
    bob = ContactFactory(email="bob@example.com", attributes={"score": 1})
    for contact in (ada, bob):
        EnrollmentFactory(journey=journey, contact=contact, current_step=score)
    claim = enrollments_claim_due(enqueue=False)

    def taken_over_at_the_condition(step, run):
        # Ada's lease changes hands after her score step was taken: her move
        # through it is made but not yet written
        if run.contact.pk == ada.pk:
            Enrollment.objects.filter(contact=ada).update(lease_token=uuid.uuid4())
        return False

    # When the worker advances the batch
    with mock.patch.object(
        ConditionStep, "matches", autospec=True, side_effect=taken_over_at_the_condition
    ):
        counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)

    # Then nothing of the batch stands: no score, no step run, no move
    assert counts == {"lease_lost": 0, "released": 2}
    assert sorted(Contact.objects.values_list("attributes__score", flat=True)) == [1, 1]
    assert not StepRun.objects.filter(enrollment__journey=journey).exists()
    # and the contacts are due again at once, released, at their first step
    passages = Enrollment.objects.filter(journey=journey)
    assert set(passages.values_list("current_step", "lease_token", "state")) == {
        (score.pk, None, "active")
    }

    # When they are claimed and advanced again
    claim = enrollments_claim_due(enqueue=False)
    counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)

    # Then each was scored once and went on
    assert counts == {"completed": 2}
    assert sorted(Contact.objects.values_list("attributes__score", flat=True)) == [6, 6]


def test_list_actions_for_a_batch_record_who_was_already_there():
    # Given four contacts at an add-to-list step, two of them already members
    journey = JourneyFactory(name="Lists")
    step = _add_to_list(journey)
    contacts = ContactFactory.create_batch(4)
    for contact in contacts[:2]:
        ListMembership.objects.create(contact=contact, contact_list_id=step.contact_list_id)
    for contact in contacts:
        EnrollmentFactory(journey=journey, contact=contact, current_step=step)

    # When they are advanced in one batch
    claim = enrollments_claim_due(enqueue=False)
    enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)

    # Then all four are members, and each run says which joined
    members = set(
        ListMembership.objects.filter(contact_list_id=step.contact_list_id).values_list(
            "contact_id", flat=True
        )
    )
    assert members == {c.pk for c in contacts}
    details = dict(StepRun.objects.filter(step=step).values_list("enrollment__contact", "detail"))
    assert [details[c.pk] for c in contacts] == [
        "already in the list",
        "already in the list",
        f"added to {step.contact_list}",
        f"added to {step.contact_list}",
    ]
