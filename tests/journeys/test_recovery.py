"""A step that raises fails its enrollment with the error, the others carry on,
and staff retry the failed step from the admin once the cause is fixed."""

from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from journeys.models import ConditionStep, Enrollment, Journey, StepRun
from journeys.services.recovery import enrollments_retry_failed
from journeys.services.runner import STEP_MAX_ATTEMPTS
from journeys.services.scheduling import scheduler_tick
from tests.admin_pages import result_rows
from tests.factories import ContactFactory, EnrollmentFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = reverse("admin:journeys_enrollment_changelist")


def at_condition(journey, contact):
    return Enrollment.objects.create(
        journey=journey,
        contact=contact,
        current_step=journey.step_map["condition"],
        sequence=2,
        entered_at=timezone.now(),
        next_run_at=timezone.now(),
    )


def failing_for(email):
    real = ConditionStep.matches

    def matches(step, run):
        if run.contact.email == email:
            raise RuntimeError("the CRM answered 500")
        return real(step, run)

    return matches


def fail_for_good(journey, run_worker, broken_email):
    """Run the condition until the contact `broken_email` has used up its tries."""
    with mock.patch.object(
        ConditionStep, "matches", autospec=True, side_effect=failing_for(broken_email)
    ):
        scheduler_tick()
        run_worker()
        for _ in range(STEP_MAX_ATTEMPTS - 1):
            # The back-off has run out (rather than travelling in time: rq's
            # worker teardown can hang when the clock jumps).
            Enrollment.objects.filter(attempts__gt=0, state="waiting").update(
                next_run_at=timezone.now()
            )
            scheduler_tick()
            run_worker()


@pytest.fixture
def broken_and_fine(welcome_series, run_worker, smtp_server):
    """Two contacts at the condition; the step raised for Nia until her enrollment failed."""
    nia = at_condition(welcome_series, ContactFactory(email="nia@example.com"))
    omar = at_condition(welcome_series, ContactFactory(email="omar@example.com"))
    fail_for_good(welcome_series, run_worker, "nia@example.com")
    nia.refresh_from_db()
    omar.refresh_from_db()
    return nia, omar


def test_a_step_that_keeps_raising_fails_its_enrollment_while_the_others_carry_on(
    broken_and_fine, smtp_server
):
    nia, omar = broken_and_fine

    # Nia's enrollment failed on the condition, with the error
    assert nia.state == Enrollment.State.FAILED
    assert "the CRM answered 500" in nia.last_error
    assert nia.current_step.key == "created-project"
    # while Omar went on to the nudge
    assert [m["To"] for m in smtp_server.messages] == ["omar@example.com"]
    assert omar.state == Enrollment.State.COMPLETED


def test_a_retried_failed_step_runs_again_at_the_next_pass(
    broken_and_fine, run_worker, smtp_server
):
    nia, _ = broken_and_fine

    # When the cause is fixed and the step retried
    outcome = enrollments_retry_failed(enrollments=Enrollment.objects.filter(pk=nia.pk))
    nia.refresh_from_db()
    assert (outcome.retried, outcome.refused) == (1, 0)
    assert (nia.state, nia.attempts, nia.finished_at) == ("active", 0, None)
    assert nia.next_run_at <= timezone.now()
    scheduler_tick()
    run_worker()

    # Then Nia goes on from the failed step, and gets the nudge once
    nia.refresh_from_db()
    assert nia.state == Enrollment.State.COMPLETED
    nudges = [m["To"] for m in smtp_server.messages]
    assert nudges == ["omar@example.com", "nia@example.com"]
    outcomes = list(
        StepRun.objects.filter(enrollment=nia).order_by("id").values_list("outcome", flat=True)
    )
    assert outcomes == ["retry", "retry", "retry", "failed", "continued", "continued", "completed"]


def test_only_failed_enrollments_are_retried(welcome_series):
    step = welcome_series.step_map["condition"]
    failed = EnrollmentFactory(
        journey=welcome_series, current_step=step, state="failed", next_run_at=None
    )
    waiting = EnrollmentFactory(
        journey=welcome_series,
        current_step=step,
        state="waiting",
        next_run_at=timezone.now() + timedelta(days=1),
    )
    completed = EnrollmentFactory(journey=welcome_series, state="completed", next_run_at=None)
    # a failed passage whose contact has since entered the journey again
    back = ContactFactory()
    EnrollmentFactory(journey=welcome_series, contact=back, current_step=step, state="failed")
    EnrollmentFactory(journey=welcome_series, contact=back, current_step=step, state="waiting")

    outcome = enrollments_retry_failed(enrollments=Enrollment.objects.all())

    assert (outcome.retried, outcome.refused) == (1, 4)
    assert Enrollment.objects.get(pk=failed.pk).state == "active"
    assert Enrollment.objects.get(pk=waiting.pk).next_run_at > timezone.now()
    assert Enrollment.objects.get(pk=completed.pk).state == "completed"


def test_failed_enrollments_of_an_archived_journey_stay_failed(welcome_series):
    failed = EnrollmentFactory(
        journey=welcome_series, current_step=welcome_series.step_map["condition"], state="failed"
    )
    Journey.objects.filter(pk=welcome_series.pk).update(state=Journey.State.ARCHIVED)

    outcome = enrollments_retry_failed(enrollments=Enrollment.objects.all())

    assert (outcome.retried, outcome.refused) == (0, 1)
    assert Enrollment.objects.get(pk=failed.pk).state == "failed"


def signed_in(*codenames):
    # Permissions given directly: the role groups made by a migration are gone
    # once a transactional test has emptied the tables.
    user = UserFactory(is_superuser=False)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_journey_editors_see_the_error_and_retry_from_the_admin(
    broken_and_fine, run_worker, smtp_server
):
    nia, _ = broken_and_fine
    client = signed_in("view_enrollment", "change_journey")

    # The failed enrollment shows its error in the list
    rows = result_rows(client.get(CHANGELIST, {"state__exact": "failed"}))
    assert len(rows) == 1
    assert "RuntimeError: the CRM answered 500" in rows[0]

    response = client.post(
        CHANGELIST, {"action": "retry_failed", "_selected_action": [nia.pk]}, follow=True
    )

    assert "1 contact(s) put back on their failed step" in response.content.decode()
    scheduler_tick()
    run_worker()
    nia.refresh_from_db()
    assert nia.state == Enrollment.State.COMPLETED
    assert [m["To"] for m in smtp_server.messages] == ["omar@example.com", "nia@example.com"]


def test_staff_who_may_only_view_cannot_retry(broken_and_fine, run_worker, smtp_server):
    nia, _ = broken_and_fine
    client = signed_in("view_enrollment")

    page = client.get(CHANGELIST)
    client.post(CHANGELIST, {"action": "retry_failed", "_selected_action": [nia.pk]})

    assert b"retry_failed" not in page.content
    nia.refresh_from_db()
    assert nia.state == Enrollment.State.FAILED
