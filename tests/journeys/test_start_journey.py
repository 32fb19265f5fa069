"""The start-journey step: a contact enters another journey and goes on."""

import pytest
from django.core.exceptions import ValidationError

from journeys.models import Enrollment, Journey, StartJourneyStep, StepRun
from journeys.services.exchange import journey_export, journey_import
from journeys.services.runner import enrollments_advance
from journeys.services.scheduling import enrollments_claim_due
from tests.factories import (
    ContactFactory,
    EnrollmentFactory,
    ExitStepFactory,
    JourneyFactory,
    SendMessageStepFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def onboarding():
    journey = JourneyFactory(name="Onboarding", trigger_event_name="signed_up")
    ExitStepFactory(journey=journey, key="done", position=9)
    return journey


@pytest.fixture
def upsell():
    journey = JourneyFactory(name="Upsell", trigger_type="journey", reentry="never")
    SendMessageStepFactory(journey=journey, key="offer", position=1)
    return journey


def run_from(first, contact, trigger_data=None):
    EnrollmentFactory(
        journey=first.journey, contact=contact, current_step=first, trigger_data=trigger_data or {}
    )
    claim = enrollments_claim_due(enqueue=False)
    enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)
    return Enrollment.objects.get(journey=first.journey, contact=contact)


def test_the_contact_enters_the_other_journey_with_this_passages_data(onboarding, upsell):
    start = StartJourneyStep.objects.create(
        journey=onboarding, key="to-upsell", position=1, target=upsell
    )
    contact = ContactFactory()

    passage = run_from(start, contact, trigger_data={"plan": "free"})

    assert passage.state == Enrollment.State.COMPLETED  # and went on to the exit
    started = Enrollment.objects.get(journey=upsell, contact=contact)
    assert (started.state, started.trigger_data) == (Enrollment.State.ACTIVE, {"plan": "free"})
    assert StepRun.objects.get(step=start).detail == "started “Upsell”"


def test_a_journey_that_is_not_live_is_not_started_and_the_contact_goes_on(onboarding, upsell):
    upsell.state = Journey.State.PAUSED
    upsell.save()
    start = StartJourneyStep.objects.create(
        journey=onboarding, key="to-upsell", position=1, target=upsell
    )

    passage = run_from(start, ContactFactory())

    assert passage.state == Enrollment.State.COMPLETED
    assert not Enrollment.objects.filter(journey=upsell).exists()
    assert StepRun.objects.get(step=start).detail == "“Upsell” is not live: not started"


def test_the_other_journeys_re_entry_policy_decides(onboarding, upsell):
    contact = ContactFactory()
    EnrollmentFactory(journey=upsell, contact=contact, state=Enrollment.State.COMPLETED)
    start = StartJourneyStep.objects.create(
        journey=onboarding, key="to-upsell", position=1, target=upsell
    )

    run_from(start, contact)

    assert Enrollment.objects.filter(journey=upsell, contact=contact).count() == 1
    assert (
        StepRun.objects.get(step=start).detail
        == "“Upsell” did not take them (re-entry policy or audience)"
    )


def test_a_journey_without_a_trigger_from_journeys_is_not_started(onboarding):
    signups_only = JourneyFactory(name="Sign-ups only", trigger_event_name="signed_up")
    SendMessageStepFactory(journey=signups_only, key="offer", position=1)
    start = StartJourneyStep.objects.create(
        journey=onboarding, key="to-it", position=1, target=signups_only
    )

    passage = run_from(start, ContactFactory())

    assert passage.state == Enrollment.State.COMPLETED  # the contact goes on all the same
    assert not Enrollment.objects.filter(journey=signups_only).exists()
    assert StepRun.objects.get(step=start).detail == (
        "“Sign-ups only” has no trigger taking contacts from this journey: not started"
    )


def test_a_trigger_naming_one_journey_takes_contacts_from_that_one_only(onboarding, upsell):
    other = JourneyFactory(name="Other")
    ExitStepFactory(journey=other, key="done", position=9)
    upsell.triggers.update(source_journey=other)
    from_onboarding = StartJourneyStep.objects.create(
        journey=onboarding, key="to-upsell", position=1, target=upsell
    )
    from_other = StartJourneyStep.objects.create(
        journey=other, key="to-upsell", position=1, target=upsell
    )
    refused, taken = ContactFactory(), ContactFactory()

    run_from(from_onboarding, refused)
    run_from(from_other, taken)

    assert list(Enrollment.objects.filter(journey=upsell).values_list("contact", flat=True)) == [
        taken.pk
    ]


def test_a_journey_cannot_start_itself(onboarding):
    with pytest.raises(ValidationError, match="cannot start itself"):
        StartJourneyStep(journey=onboarding, key="loop", position=1, target=onboarding).full_clean()


def test_the_document_names_the_journey_started(onboarding, upsell):
    StartJourneyStep.objects.create(journey=onboarding, key="to-upsell", position=1, target=upsell)
    document = journey_export(journey=onboarding)

    copy = journey_import(document=document, name="Onboarding 2")

    assert document["steps"][0] == {"key": "to-upsell", "type": "start_journey", "target": "Upsell"}
    assert journey_export(journey=copy) == {**document, "name": "Onboarding 2"}
