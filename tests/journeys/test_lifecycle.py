"""A journey's lifecycle never strands contacts: archiving takes out whoever is inside."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from journeys.models import Enrollment, Journey
from journeys.services.editing import JourneyStateError, journey_set_state
from journeys.services.scheduling import scheduler_tick
from tests.factories import (
    ConditionStepFactory,
    ContactFactory,
    DelayStepFactory,
    EnrollmentFactory,
    ExitStepFactory,
    JourneyFactory,
    SendMessageStepFactory,
    TemplateFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:journeys_journey_changelist")


@pytest.fixture
def manager():
    user = UserFactory(is_superuser=False)
    user.groups.add(Group.objects.get(name="Journey managers"))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def busy_journey():
    """A live journey with two contacts waiting on its first step and one finished."""
    journey = JourneyFactory(name="Onboarding", state=Journey.State.LIVE)
    step = SendMessageStepFactory(journey=journey, key="hello", position=1)
    for _ in range(2):
        EnrollmentFactory(journey=journey, current_step=step, state=Enrollment.State.WAITING)
    EnrollmentFactory(
        journey=journey, current_step=None, state=Enrollment.State.COMPLETED, next_run_at=None
    )
    return journey


def test_archiving_takes_every_contact_still_inside_out_of_the_journey(busy_journey):
    journey_set_state(journey=busy_journey, state=Journey.State.ARCHIVED)

    states = sorted(Enrollment.objects.values_list("state", "exit_reason"))
    assert states == [
        ("completed", ""),
        ("exited", "The journey was archived."),
        ("exited", "The journey was archived."),
    ]
    assert not Enrollment.objects.filter(next_run_at__isnull=False).exists()
    assert scheduler_tick() == 0


def test_the_archive_action_says_how_many_leave_before_anyone_does(manager, busy_journey):
    page = manager.post(CHANGELIST, {"action": "archive", "_selected_action": [busy_journey.pk]})

    assert page.status_code == 200
    assert "2 contacts are still in this journey" in page.content.decode()
    busy_journey.refresh_from_db()
    assert busy_journey.state == Journey.State.LIVE
    assert Enrollment.objects.filter(state=Enrollment.State.WAITING).count() == 2


def test_confirming_archives_and_exits_them(manager, busy_journey):
    response = manager.post(
        CHANGELIST,
        {"action": "archive", "_selected_action": [busy_journey.pk], "confirmed": "yes"},
        follow=True,
    )

    busy_journey.refresh_from_db()
    assert busy_journey.state == Journey.State.ARCHIVED
    assert Enrollment.objects.filter(state=Enrollment.State.EXITED).count() == 2
    shown = [str(m) for m in response.context["messages"]]
    assert "2 contact(s) left the archived journeys." in shown


def test_an_empty_journey_is_archived_without_asking(manager):
    journey = JourneyFactory(name="Old promo", state=Journey.State.PAUSED)
    ContactFactory()

    manager.post(CHANGELIST, {"action": "archive", "_selected_action": [journey.pk]})

    journey.refresh_from_db()
    assert journey.state == Journey.State.ARCHIVED


# --- Checks before going live ---------------------------------------------------------


def test_a_condition_looping_back_to_a_send_without_a_delay_cannot_go_live():
    # As a marketer built it: both branches lead back to the email before them.
    journey = JourneyFactory(name="Runaway", state=Journey.State.DRAFT)
    send = SendMessageStepFactory(journey=journey, key="promo", position=1)
    ConditionStepFactory(
        journey=journey,
        key="bought",
        position=2,
        attribute="plan",
        connections={"yes": send, "no": send},
    )

    with pytest.raises(JourneyStateError) as refused:
        journey_set_state(journey=journey, state=Journey.State.LIVE)

    assert "The steps “promo” → “bought” → “promo” form a loop with no delay in it" in str(
        refused.value
    )
    journey.refresh_from_db()
    assert journey.state == Journey.State.DRAFT


def test_a_loop_with_a_delay_on_it_may_go_live():
    journey = JourneyFactory(name="Weekly reminder", state=Journey.State.DRAFT)
    send = SendMessageStepFactory(journey=journey, key="remind", position=1)
    DelayStepFactory(journey=journey, key="week", position=2, amount=7, unit="days")
    ConditionStepFactory(
        journey=journey, key="still-free", position=3, attribute="plan", connections={"yes": send}
    )
    ExitStepFactory(journey=journey, key="done", position=4)

    journey_set_state(journey=journey, state=Journey.State.LIVE)

    journey.refresh_from_db()
    assert journey.state == Journey.State.LIVE


def test_a_template_that_does_not_render_for_a_sample_contact_keeps_the_journey_a_draft(
    settings,
):
    settings.WAYMARK_RENDERING = {"MAX_CHARS": 50, "TIMEOUT": 30}
    journey = JourneyFactory(name="Too long", state=Journey.State.DRAFT)
    SendMessageStepFactory(
        journey=journey,
        key="essay",
        position=1,
        template=TemplateFactory(name="Essay", html_body="<p>" + "word " * 40 + "</p>"),
    )

    with pytest.raises(JourneyStateError, match="Step “essay”: its template “Essay” does not"):
        journey_set_state(journey=journey, state=Journey.State.LIVE)

    journey.refresh_from_db()
    assert journey.state == Journey.State.DRAFT


def test_a_step_no_contact_can_reach_keeps_the_journey_a_draft():
    journey = JourneyFactory(name="Orphan", state=Journey.State.DRAFT)
    done = ExitStepFactory(journey=journey, key="done", position=3)
    SendMessageStepFactory(journey=journey, key="hello", position=1, connections={"next": done})
    SendMessageStepFactory(journey=journey, key="forgotten", position=2)

    with pytest.raises(JourneyStateError, match="No contact can reach “forgotten”"):
        journey_set_state(journey=journey, state=Journey.State.LIVE)


def test_the_welcome_series_passes_the_checks(welcome_series):
    welcome_series.state = Journey.State.DRAFT
    welcome_series.save()

    journey_set_state(journey=welcome_series, state=Journey.State.LIVE)

    welcome_series.refresh_from_db()
    assert welcome_series.state == Journey.State.LIVE


def test_a_passage_that_reaches_an_exit_step_is_completed_like_one_that_runs_off_the_end():
    from journeys.services.runner import enrollments_advance
    from journeys.services.scheduling import enrollments_claim_due

    with_exit = JourneyFactory(name="Ends at an exit step")
    exit_step = ExitStepFactory(journey=with_exit, key="done", position=1)
    without = JourneyFactory(name="Runs off its last step")
    last = ConditionStepFactory(journey=without, key="plan", position=1, attribute="plan")
    EnrollmentFactory(journey=with_exit, current_step=exit_step)
    EnrollmentFactory(journey=without, current_step=last)

    claim = enrollments_claim_due(enqueue=False)
    enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)

    assert sorted(Enrollment.objects.values_list("journey__name", "state", "exit_reason")) == [
        ("Ends at an exit step", "completed", ""),
        ("Runs off its last step", "completed", ""),
    ]
