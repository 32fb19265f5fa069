"""The yes/no condition step speaks the segment language ("condition" kind)."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from journeys.models import ConditionStep, StepRun
from journeys.services.entry import journeys_enroll_contact
from journeys.services.exchange import JourneyImportError, journey_export, journey_import
from journeys.services.scheduling import scheduler_tick
from tests.admin_pages import form_data
from tests.factories import (
    ConditionStepFactory,
    ContactFactory,
    ContactListFactory,
    EventFactory,
    ExitStepFactory,
    JourneyFactory,
    ListMembershipFactory,
    UserFactory,
)

TREE = {
    "all": [
        {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
        {"event": "purchase", "op": "done", "within_days": 30},
    ]
}


def condition_journey(tree=TREE):
    journey = JourneyFactory(name="Upsell")
    yes = ExitStepFactory(journey=journey, key="yes", position=3)
    no = ExitStepFactory(journey=journey, key="no", position=2)
    step = ConditionStepFactory(
        journey=journey, key="buyer", position=1, kind=ConditionStep.Kind.CONDITION,
        condition=tree, event_name="", connections={"yes": yes, "no": no},
    )  # fmt: skip
    return journey, step


@pytest.mark.django_db(transaction=True)
def test_a_condition_step_branches_on_attributes_and_events_together(run_worker, rq_queue):
    # Given a step asking "pro or team, and bought in the last 30 days?"
    journey, step = condition_journey()
    buyer = ContactFactory(attributes={"plan": "team"})
    EventFactory(contact=buyer, name="purchase", occurred_at=timezone.now() - timedelta(days=2))
    lapsed = ContactFactory(attributes={"plan": "pro"})
    EventFactory(contact=lapsed, name="purchase", occurred_at=timezone.now() - timedelta(days=90))
    free = ContactFactory(attributes={"plan": "free"})
    EventFactory(contact=free, name="purchase")
    for contact in (buyer, lapsed, free):
        journeys_enroll_contact(journey=journey, contact=contact)

    # When the worker advances them
    scheduler_tick()
    run_worker()

    # Then only the recent pro/team buyer said yes
    runs = {r.enrollment.contact_id: r.branch for r in StepRun.objects.filter(step=step)}
    assert runs == {buyer.pk: "yes", lapsed.pk: "no", free.pk: "no"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tree", "reason"),
    [
        ({}, "Write the condition to test."),
        ({"attribute": "plan", "op": "like", "value": "pro"}, "unknown attribute operator 'like'"),
        ({"list": 999999, "op": "member"}, "there is no list with id 999999"),
        ({"event": "purchase", "op": "done", "within_days": "30"}, "'within_days' takes"),
    ],
)
def test_a_condition_step_refuses_a_tree_it_cannot_evaluate(tree, reason):
    _, step = condition_journey(tree={"attribute": "plan", "op": "exists"})
    step.condition = tree

    with pytest.raises(ValidationError) as refused:
        step.full_clean()

    errors = refused.value.message_dict
    assert list(errors) == ["condition"]
    assert reason in errors["condition"][0]


@pytest.mark.django_db
def test_an_attribute_condition_refuses_a_value_its_operator_cannot_use():
    _, step = condition_journey()
    step.kind, step.attribute, step.operator, step.value = "attribute", "plan", "in", "pro"

    with pytest.raises(ValidationError) as refused:
        step.full_clean()

    assert refused.value.message_dict == {
        "value": ["'in' takes a non-empty list of texts, numbers or true/false"]
    }


@pytest.mark.django_db
def test_a_condition_tree_round_trips_through_a_journey_document():
    readers = ContactListFactory(name="Readers")
    tree = {"any": [{"list": readers.pk, "op": "member"}, TREE]}
    journey, _ = condition_journey(tree=tree)
    document = journey_export(journey=journey)

    copy = journey_import(document=document, name="Upsell 2")

    assert document["steps"][0]["condition"] == {"any": [{"list": "Readers", "op": "member"}, TREE]}
    assert ConditionStep.objects.get(journey=copy).condition == tree
    assert journey_export(journey=copy) == {**document, "name": "Upsell 2"}


@pytest.mark.django_db
def test_a_document_names_what_a_condition_tree_refers_to_by_name():
    from tests.factories import SegmentFactory, TemplateFactory

    pro = SegmentFactory(name="Pro")
    welcome = TemplateFactory(name="Welcome")
    tree = {
        "all": [
            {"segment": pro.pk, "op": "member"},
            {"message": "opened", "op": "done", "template": welcome.pk,
             "message_type": welcome.message_type_id},
        ]
    }  # fmt: skip
    journey, _ = condition_journey(tree=tree)
    tree["all"].append({"message": "clicked", "op": "not_done", "journey": journey.pk})
    ConditionStep.objects.filter(journey=journey).update(condition=tree)

    document = journey_export(journey=journey)

    channel_type = f"{welcome.message_type.channel.name} / {welcome.message_type.name}"
    assert document["steps"][0]["condition"] == {
        "all": [
            {"segment": "Pro", "op": "member"},
            {"message": "opened", "op": "done", "template": "Welcome",
             "message_type": channel_type},
            {"message": "clicked", "op": "not_done", "journey": "Upsell"},
        ]
    }  # fmt: skip
    copy = journey_import(document=document, name="Upsell 2")
    assert ConditionStep.objects.get(journey=copy).condition == tree


@pytest.mark.django_db
def test_importing_a_condition_naming_a_missing_list_is_refused_and_writes_nothing():
    journey, _ = condition_journey()
    document = journey_export(journey=journey)
    document["steps"][0]["condition"] = {"list": "Nobody reads this", "op": "member"}

    with pytest.raises(JourneyImportError, match="condition: no list 'Nobody reads this'"):
        journey_import(document=document, name="Broken")

    assert not ConditionStep.objects.filter(journey__name="Broken").exists()


@pytest.mark.django_db
def test_the_admin_saves_a_condition_step_and_shows_what_is_wrong_with_a_tree(client):
    client.force_login(UserFactory(is_superuser=True))
    journey, step = condition_journey()
    url = reverse("admin:journeys_journey_change", args=[journey.pk])
    data = form_data(client.get(url))
    prefix = next(k[: -len("-condition")] for k in data if k.endswith("-condition"))
    assert data[f"{prefix}-id"] == step.pk
    member = ListMembershipFactory()

    data[f"{prefix}-condition"] = '{"list": 999999, "op": "member"}'
    refused = client.post(url, data)
    data[f"{prefix}-condition"] = f'{{"list": {member.contact_list_id}, "op": "member"}}'
    saved = client.post(url, data)

    assert refused.status_code == 200
    assert "there is no list with id 999999" in refused.content.decode()
    assert saved.status_code == 302
    step.refresh_from_db()
    assert step.condition == {"list": member.contact_list_id, "op": "member"}


@pytest.mark.django_db
def test_a_batch_at_a_condition_step_is_matched_in_queries_that_do_not_grow(
    django_assert_num_queries,
):
    from types import SimpleNamespace

    # Given a condition on attributes, a list and events
    readers = ContactListFactory(name="Readers")
    _, step = condition_journey(
        tree={"any": [{"list": readers.pk, "op": "member"}, TREE]},
    )
    now = timezone.now()

    def batch(count):
        contacts = ContactFactory.create_batch(count, attributes={"plan": "pro"})
        for contact in contacts[::2]:
            EventFactory(contact=contact, name="purchase")
        return [SimpleNamespace(contact=c, now=now) for c in contacts]

    small_runs, large_runs = batch(4), batch(8)

    # When each batch is matched, Then both cost one query
    with django_assert_num_queries(1):
        small_answers = step.matches_many(small_runs)
    with django_assert_num_queries(1):
        large_answers = step.matches_many(large_runs)

    # And the answers are those of the contact-by-contact evaluation
    assert small_answers == [True, False, True, False]
    assert large_answers == [step.matches(run) for run in large_runs]
