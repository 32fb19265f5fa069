"""Splits: a random split by weight with a stable draw, and a multi-way split
on the condition language; each branch is a labelled connection."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact
from journeys.models import Enrollment, RandomSplitStep, SplitStep, StepRun
from journeys.services.exchange import journey_export, journey_import
from journeys.services.graph import JourneySteps, step_connect
from journeys.services.runner import StepContext, enrollments_advance
from journeys.services.scheduling import enrollments_claim_due
from tests.admin_pages import form_data
from tests.factories import ContactFactory, EventFactory, ExitStepFactory, JourneyFactory

pytestmark = pytest.mark.django_db


def advance_all():
    while claim := enrollments_claim_due(enqueue=False, limit=1000):
        enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)


def enter(first, contacts):
    now = timezone.now()
    Enrollment.objects.bulk_create(
        Enrollment(journey=first.journey, contact=c, current_step=first, next_run_at=now,
                   entered_at=now)
        for c in contacts
    )  # fmt: skip


def exits(journey, *keys):
    return {key: ExitStepFactory(journey=journey, key=key, position=10 + i)
            for i, key in enumerate(keys)}  # fmt: skip


def branches_taken(step):
    return dict(StepRun.objects.filter(step=step).values_list("enrollment__contact_id", "branch"))


def test_a_random_split_follows_its_weights_and_each_branch_its_connection():
    journey = JourneyFactory(name="A/B/C")
    split = RandomSplitStep.objects.create(journey=journey, key="abc", position=1,
                                           weights="60,30,10")  # fmt: skip
    ends = exits(journey, "end-a", "end-b", "end-c")
    step_connect(step=split, targets={label: ends[f"end-{label}"] for label in "abc"})
    contacts = Contact.objects.bulk_create(Contact(email=f"c{i}@example.com") for i in range(3000))
    enter(split, contacts)

    advance_all()

    taken = branches_taken(split)
    shares = {label: list(taken.values()).count(label) / len(contacts) for label in "abc"}
    assert shares["a"] == pytest.approx(0.6, abs=0.04)
    assert shares["b"] == pytest.approx(0.3, abs=0.04)
    assert shares["c"] == pytest.approx(0.1, abs=0.03)
    # Each contact ended at the exit its branch connects to.
    ended = dict(
        StepRun.objects.filter(step__in=ends.values()).values_list(
            "enrollment__contact_id", "step__key"
        )
    )
    assert all(ended[contact] == f"end-{label}" for contact, label in taken.items())


def test_a_random_split_draws_the_same_branch_for_a_contact_every_time():
    journey = JourneyFactory(name="Stable")
    split = RandomSplitStep.objects.create(journey=journey, key="ab", position=1, weights="1,1")
    contacts = [ContactFactory() for _ in range(40)]

    first = [split.branch_for(c.pk) for c in contacts]
    again = [RandomSplitStep.objects.get(pk=split.pk).branch_for(c.pk) for c in contacts]

    assert first == again
    assert set(first) == {"a", "b"}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("100", "Give 2 to 5 weights."),
        ("1,2,3,4,5,6", "Give 2 to 5 weights."),
        ("50,fifty", "Give whole numbers separated by commas"),
        ("0,0", "not all zero"),
        ("-1,5", "not all zero"),
    ],
)
def test_bad_weights_are_refused_with_a_reason(weights, message):
    split = RandomSplitStep(journey=JourneyFactory(), key="s", position=1, weights=weights)

    with pytest.raises(ValidationError, match=message):
        split.full_clean()


def multi_way(journey):
    return SplitStep.objects.create(
        journey=journey,
        key="tier",
        position=1,
        branches=[
            {"attribute": "plan", "op": "eq", "value": "gold"},
            {"event": "purchase", "op": "done", "within_days": 30},
        ],
    )


def test_a_multi_way_split_sends_each_contact_down_the_first_branch_they_match():
    journey = JourneyFactory(name="Tiers")
    split = multi_way(journey)
    ends = exits(journey, "gold", "buyer", "rest")
    step_connect(step=split, targets={"1": ends["gold"], "2": ends["buyer"], "other": ends["rest"]})
    gold_buyer = ContactFactory(attributes={"plan": "gold"})
    buyer = ContactFactory(attributes={"plan": "free"})
    nobody = ContactFactory(attributes={})
    for contact in (gold_buyer, buyer):
        EventFactory(contact=contact, name="purchase")
    enter(split, [gold_buyer, buyer, nobody])

    advance_all()

    assert branches_taken(split) == {gold_buyer.pk: "1", buyer.pk: "2", nobody.pk: "other"}
    finished = dict(Enrollment.objects.values_list("contact_id", "state"))
    assert set(finished.values()) == {Enrollment.State.COMPLETED}


def test_a_multi_way_split_matches_a_batch_in_one_query_per_branch():
    journey = JourneyFactory(name="Batch")
    split = multi_way(journey)
    steps = JourneySteps.load(journey.pk)

    def queries_for(n):
        contacts = [ContactFactory(attributes={"plan": "gold" if i % 2 else "free"})
                    for i in range(n)]  # fmt: skip
        runs = [
            StepContext(enrollment=Enrollment(journey=journey, entered_at=timezone.now()),
                        contact=c, steps=steps, now=timezone.now())
            for c in contacts
        ]  # fmt: skip
        with CaptureQueriesContext(connection) as captured:
            outcomes = steps.by_id[split.pk].execute_many(runs)
        assert [o.branch for o in outcomes] == ["1" if i % 2 else "other" for i in range(n)]
        return len(captured)

    assert queries_for(10) == queries_for(20) == 2


def test_a_multi_way_split_refuses_a_condition_it_cannot_read():
    split = SplitStep(journey=JourneyFactory(), key="s", position=1,
                      branches=[{"attribute": "plan", "op": "resembles", "value": 1}])  # fmt: skip

    with pytest.raises(ValidationError, match="Branch 1: unknown attribute operator 'resembles'"):
        split.full_clean()


def test_splits_round_trip_through_the_journey_document():
    journey = JourneyFactory(name="Splits")
    split = multi_way(journey)
    RandomSplitStep.objects.create(journey=journey, key="ab", position=2, weights="70,30")
    ends = exits(journey, "gold", "rest")
    step_connect(step=split, targets={"1": ends["gold"], "other": ends["rest"]})
    document = journey_export(journey=journey)

    copy = journey_import(document=document, name="Splits (copy)")

    assert journey_export(journey=copy) == {**document, "name": "Splits (copy)"}
    assert document["steps"][0]["connections"] == {"1": "gold", "other": "rest"}


def test_the_admin_refuses_a_connection_for_a_branch_the_split_does_not_have(admin_client):
    journey = JourneyFactory(name="Admin split", state="draft")
    RandomSplitStep.objects.create(journey=journey, key="ab", position=1, weights="50,50")
    ExitStepFactory(journey=journey, key="end", position=2)
    url = reverse("admin:journeys_journey_change", args=[journey.pk])
    data = form_data(admin_client.get(url))
    data[next(k for k in data if k.endswith("-weights"))] = "50,50"
    data[next(k for k in data if k.endswith("-go_c"))] = "end"

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "This step has no “c” branch: leave it empty." in response.content.decode()
    assert not journey.steps.get(key="ab").connections.exists()
