import pytest

from journeys.models import Enrollment, Journey
from journeys.services.editing import (
    JourneyStateError,
    MoveError,
    enrollments_exit,
    enrollments_move,
    journey_set_state,
)
from tests.factories import ContactFactory, EnrollmentFactory, ExitStepFactory, JourneyFactory

pytestmark = pytest.mark.django_db


def test_a_journey_without_an_entry_trigger_cannot_go_live(welcome_series):
    welcome_series.triggers.all().delete()
    welcome_series.state = Journey.State.DRAFT
    welcome_series.save()

    with pytest.raises(JourneyStateError, match="no entry trigger"):
        journey_set_state(journey=welcome_series, state=Journey.State.LIVE)


def test_an_event_trigger_without_its_event_cannot_go_live(welcome_series):
    welcome_series.triggers.update(event_name="")
    welcome_series.state = Journey.State.DRAFT
    welcome_series.save()

    with pytest.raises(JourneyStateError, match="Name the event that starts this journey"):
        journey_set_state(journey=welcome_series, state=Journey.State.LIVE)


def test_moving_contacts_into_another_journey_is_refused(welcome_series):
    enrollment = EnrollmentFactory(
        journey=welcome_series,
        contact=ContactFactory(),
        current_step=welcome_series.step_map["wait"],
    )
    other = JourneyFactory()

    with pytest.raises(MoveError):
        enrollments_move(
            enrollments=Enrollment.objects.filter(pk=enrollment.pk),
            to_step=ExitStepFactory(journey=other),
        )


def test_exiting_leaves_finished_enrollments_alone(welcome_series):
    done = EnrollmentFactory(journey=welcome_series, contact=ContactFactory(), state="completed")
    waiting = EnrollmentFactory(
        journey=welcome_series,
        contact=ContactFactory(),
        current_step=welcome_series.step_map["wait"],
    )

    count = enrollments_exit(
        enrollments=Enrollment.objects.all(), reason="test", kind=Enrollment.ExitKind.ADMIN
    )

    assert count == 1
    done.refresh_from_db()
    waiting.refresh_from_db()
    assert (done.state, waiting.state) == ("completed", "exited")
    assert waiting.exit_reason == "test"
