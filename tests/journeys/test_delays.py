"""Delays: for a time, until a time of day on chosen weekdays, or until a date
in the contact's profile — each in the contact's own time zone."""

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError

from journeys.models import DelayStep, Enrollment, StepRun
from journeys.services.runner import enrollments_advance
from journeys.services.scheduling import enrollments_claim_due
from tests.factories import (
    ContactFactory,
    DelayStepFactory,
    EnrollmentFactory,
    ExitStepFactory,
    JourneyFactory,
)

pytestmark = pytest.mark.django_db

# A Friday, 15:00 in Paris (UTC+1 in winter).
FRIDAY_AFTERNOON = datetime(2027, 1, 15, 14, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def advance_one(delay, contact):
    EnrollmentFactory(journey=delay.journey, contact=contact, current_step=delay)
    claim = enrollments_claim_due(enqueue=False)
    enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)
    return Enrollment.objects.get(contact=contact)


@pytest.fixture
def journey():
    journey = JourneyFactory(name="Timed")
    ExitStepFactory(journey=journey, key="done", position=9)
    return journey


@time_machine.travel(FRIDAY_AFTERNOON, tick=False)
def test_until_nine_on_weekdays_waits_over_the_weekend_in_the_contacts_time(journey):
    delay = DelayStepFactory(
        journey=journey, key="monday", position=1, wait_until="time_of_day",
        at_time=time(9, 0), weekdays="01234",
    )  # fmt: skip
    paris = ContactFactory(timezone="Europe/Paris")

    enrollment = advance_one(delay, paris)

    assert enrollment.state == Enrollment.State.WAITING
    assert enrollment.next_run_at == datetime(2027, 1, 18, 9, 0, tzinfo=PARIS)  # Monday 09:00


@time_machine.travel(FRIDAY_AFTERNOON, tick=False)
def test_a_time_of_day_still_ahead_today_is_today(journey):
    delay = DelayStepFactory(
        journey=journey, key="evening", position=1, wait_until="time_of_day", at_time=time(18, 30)
    )
    enrollment = advance_one(delay, ContactFactory(timezone="Europe/Paris"))

    assert enrollment.next_run_at == datetime(2027, 1, 15, 18, 30, tzinfo=PARIS)


@time_machine.travel(FRIDAY_AFTERNOON, tick=False)
def test_a_contact_without_a_time_zone_waits_in_the_sites(journey, settings):
    delay = DelayStepFactory(
        journey=journey, key="evening", position=1, wait_until="time_of_day", at_time=time(18, 30)
    )
    enrollment = advance_one(delay, ContactFactory(timezone=""))

    assert enrollment.next_run_at == datetime(2027, 1, 15, 18, 30, tzinfo=UTC)  # TIME_ZONE=UTC


@time_machine.travel(FRIDAY_AFTERNOON, tick=False)
def test_until_a_week_before_the_renewal_date_from_the_profile(journey):
    delay = DelayStepFactory(
        journey=journey, key="before-renewal", position=1, wait_until="date_attribute",
        date_attribute="plan.renews_on", offset_days=-7, at_time=time(10, 0),
    )  # fmt: skip
    contact = ContactFactory(
        timezone="Europe/Paris", attributes={"plan": {"renews_on": "2027-03-01"}}
    )

    enrollment = advance_one(delay, contact)

    assert enrollment.next_run_at == datetime(2027, 2, 22, 10, 0, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("attributes", "why"),
    [
        ({}, "no date in 'renews_on': went on at once"),
        ({"renews_on": "soon"}, "no date in 'renews_on': went on at once"),
        ({"renews_on": "2026-01-01"}, "2026-01-01 has passed: went on at once"),
    ],
)
@time_machine.travel(FRIDAY_AFTERNOON, tick=False)
def test_a_missing_or_past_date_goes_on_at_once_and_says_why(journey, attributes, why):
    delay = DelayStepFactory(
        journey=journey, key="renewal", position=1, wait_until="date_attribute",
        date_attribute="renews_on",
    )  # fmt: skip

    enrollment = advance_one(delay, ContactFactory(attributes=attributes))

    assert enrollment.state == Enrollment.State.COMPLETED  # on to the exit step at once
    assert StepRun.objects.get(step=delay).detail == why


@pytest.mark.parametrize(
    ("settings_", "field"),
    [
        ({"wait_until": "time_of_day"}, "at_time"),
        ({"wait_until": "time_of_day", "at_time": time(9, 0), "weekdays": "79"}, "weekdays"),
        ({"wait_until": "time_of_day", "at_time": time(9, 0), "weekdays": ""}, "weekdays"),
        ({"wait_until": "date_attribute", "date_attribute": ""}, "date_attribute"),
    ],
)
def test_an_incomplete_delay_is_a_form_error(journey, settings_, field):
    delay = DelayStep(journey=journey, key="x", position=1, **settings_)

    with pytest.raises(ValidationError) as refused:
        delay.full_clean()

    assert field in refused.value.message_dict
