"""The update-contact step: attributes, lists, consent and the blocklist, written
with the contact's move to the next step."""

import pytest
from django.core.exceptions import ValidationError

from contacts.models import Contact, ListMembership
from journeys.models import Enrollment, JourneyTrigger, StepRun, UpdateContactStep
from journeys.services.exchange import journey_export, journey_import
from journeys.services.runner import enrollments_advance
from journeys.services.scheduling import enrollments_claim_due
from subscriptions.models import Channel, ConsentRecord, Subscription
from tests.factories import (
    ChannelFactory,
    ConditionStepFactory,
    ContactFactory,
    ContactListFactory,
    EnrollmentFactory,
    ExitStepFactory,
    JourneyFactory,
    MessageTypeFactory,
    SendMessageStepFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def journey():
    return JourneyFactory(name="Scoring")


def step(journey, position, **settings):
    return UpdateContactStep.objects.create(
        journey=journey, key=f"update-{position}", position=position, **settings
    )


def run_from(first, contact):
    EnrollmentFactory(journey=first.journey, contact=contact, current_step=first)
    claim = enrollments_claim_due(enqueue=False)
    enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)
    contact.refresh_from_db()
    return Enrollment.objects.get(contact=contact, journey=first.journey)


def test_set_and_increment_attributes_and_the_next_step_reads_them(journey):
    first = step(journey, 1, action="set", attribute="plan", value='"pro"')
    step(journey, 2, action="increment", attribute="scores.lead", value="10")
    step(journey, 3, action="increment", attribute="visits", value="-1")
    done = ExitStepFactory(journey=journey, key="done", position=9)
    other = ExitStepFactory(journey=journey, key="other", position=10)
    ConditionStepFactory(
        journey=journey, key="is-pro", position=4, kind="attribute", attribute="plan",
        operator="eq", value='"pro"', connections={"yes": done, "no": other},
    )  # fmt: skip
    contact = ContactFactory(attributes={"visits": 3, "plan": "free"})

    enrollment = run_from(first, contact)

    assert contact.attributes == {"plan": "pro", "scores": {"lead": 10}, "visits": 2}
    assert StepRun.objects.get(step__key="is-pro").branch == "yes"
    assert enrollment.state == Enrollment.State.COMPLETED
    assert StepRun.objects.get(step=first).detail == "plan = 'pro'"


def test_unset_removes_an_attribute(journey):
    first = step(journey, 1, action="unset", attribute="coupon")
    contact = ContactFactory(attributes={"coupon": "SPRING", "plan": "free"})

    run_from(first, contact)

    assert contact.attributes == {"plan": "free"}


def test_adding_to_what_is_not_a_number_fails_the_step_with_the_reason(journey):
    first = step(journey, 1, action="increment", attribute="plan", value="5")
    contact = ContactFactory(attributes={"plan": "free"})

    enrollment = run_from(first, contact)

    assert "plan holds 'free', not a number to add to" in enrollment.last_error
    assert contact.attributes == {"plan": "free"}


def test_added_to_a_list_starts_that_lists_journeys(journey):
    vips = ContactListFactory(name="VIP")
    welcome_vips = JourneyFactory(
        name="Welcome VIPs", trigger_type=JourneyTrigger.Kind.LIST_JOIN, trigger_event_name="",
        trigger_list=vips,
    )  # fmt: skip
    SendMessageStepFactory(journey=welcome_vips, key="hello", position=1)
    first = step(journey, 1, action="add_to_list", contact_list=vips)
    contact = ContactFactory()

    run_from(first, contact)

    membership = ListMembership.objects.get(contact=contact, contact_list=vips)
    assert membership.source == ListMembership.Source.JOURNEY
    assert Enrollment.objects.filter(journey=welcome_vips, contact=contact).exists()


def test_removed_from_a_list(journey):
    vips = ContactListFactory(name="VIP")
    contact = ContactFactory()
    ListMembership.objects.create(contact=contact, contact_list=vips)
    first = step(journey, 1, action="remove_from_list", contact_list=vips)

    run_from(first, contact)

    assert not ListMembership.objects.filter(contact=contact).exists()


def test_unsubscribing_goes_on_the_consent_ledger(journey):
    tips = MessageTypeFactory(name="Tips")
    first = step(journey, 1, action="unsubscribe", message_type=tips)
    contact = ContactFactory()

    run_from(first, contact)

    assert Subscription.objects.get(contact=contact, message_type=tips).status == "unsubscribed"
    record = ConsentRecord.objects.get(contact=contact)
    assert (record.source, record.action) == ("journey", "unsubscribed")
    assert "step “update-1”" in record.note


def test_blocklisting(journey):
    first = step(journey, 1, action="blocklist")
    contact = ContactFactory()

    run_from(first, contact)

    assert Contact.objects.get(pk=contact.pk).blocklisted is True


@pytest.mark.parametrize(
    ("settings_", "error"),
    [
        ({"action": "increment", "attribute": "score", "value": "lots"}, "number to add"),
        ({"action": "set", "attribute": ""}, "attribute"),
        ({"action": "add_to_list"}, "Choose one for this action"),
        ({"action": "unsubscribe"}, "Choose one for this action"),
    ],
)
def test_an_incomplete_update_is_a_form_error(journey, settings_, error):
    with pytest.raises(ValidationError, match=error):
        UpdateContactStep(journey=journey, key="x", position=1, **settings_).full_clean()


def test_a_transactional_channel_cannot_be_left_through_a_step(journey):
    receipts = ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)

    with pytest.raises(ValidationError, match="is transactional"):
        UpdateContactStep(
            journey=journey, key="x", position=1, action="unsubscribe_channel", channel=receipts
        ).full_clean()


def test_update_steps_round_trip_as_documents_naming_lists_and_types(journey):
    vips = ContactListFactory(name="VIP")
    tips = MessageTypeFactory(name="Tips")
    step(journey, 1, action="add_to_list", contact_list=vips)
    step(journey, 2, action="subscribe", message_type=tips)
    step(journey, 3, action="increment", attribute="score", value="10")
    document = journey_export(journey=journey)

    copy = journey_import(document=document, name="Scoring 2")

    assert document["steps"][0]["contact_list"] == "VIP"
    assert document["steps"][1]["message_type"] == "Marketing email / Tips"
    assert journey_export(journey=copy) == {**document, "name": "Scoring 2"}
