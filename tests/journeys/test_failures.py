"""Bad input never leaves an enrollment stuck or lost."""

from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.utils import timezone

from journeys.models import ConditionStep, Enrollment, StepRun
from journeys.services.entry import journeys_enroll_contact
from journeys.services.scheduling import scheduler_tick
from messaging.models import Message, Template
from messaging.services import retry_tick
from tests.conftest import SmtpRecorder
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db(transaction=True)


def advance(run_worker):
    # What the scheduler does each pass: due enrollments, then due retries.
    scheduler_tick()
    retry_tick()
    run_worker()


def test_mail_server_down_messaging_retries_the_message_while_the_journey_goes_on(
    welcome_series, nia, run_worker, smtp_down, settings
):
    # Given the mail server is down when Nia enters
    journeys_enroll_contact(journey=welcome_series, contact=nia)
    advance(run_worker)

    # Then the message waits for messaging's retry, and Nia goes on to the delay
    message = Message.objects.get()
    assert (message.status, message.attempts) == ("queued", 1)
    assert message.next_attempt_at > timezone.now()
    assert message.error
    enrollment = Enrollment.objects.get()
    assert enrollment.state == Enrollment.State.WAITING
    assert enrollment.current_step_id == welcome_series.step_map["condition"].pk

    # When the server comes back on that port and the retry is due
    handler = SmtpRecorder()
    smtp_down.release()
    controller = Controller(handler, hostname="127.0.0.1", port=settings.EMAIL_PORT)
    controller.start()
    try:
        with time_machine.travel(timezone.now() + timedelta(minutes=2)):
            advance(run_worker)
    finally:
        controller.stop()

    # Then the email is delivered once, under the same Message; Nia is still waiting
    assert [m["Subject"] for m in handler.messages] == ["Welcome, Nia!"]
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 2)
    enrollment.refresh_from_db()
    assert enrollment.current_step_id == welcome_series.step_map["condition"].pk
    assert enrollment.state == Enrollment.State.WAITING


def test_mail_server_down_for_good_fails_the_message_and_moves_on(
    welcome_series, nia, run_worker, smtp_down, settings
):
    settings.WAYMARK_SENDING = {**settings.WAYMARK_SENDING, "MAX_ATTEMPTS": 2}
    journeys_enroll_contact(journey=welcome_series, contact=nia)
    advance(run_worker)
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        advance(run_worker)

    message = Message.objects.get()
    assert (message.status, message.attempts) == ("failed", 2)
    enrollment = Enrollment.objects.get()
    assert enrollment.state == Enrollment.State.WAITING
    assert enrollment.current_step_id == welcome_series.step_map["condition"].pk


def test_a_template_that_fails_to_render_does_not_stop_the_journey(
    welcome_series, nia, run_worker, smtp_server
):
    Template.objects.filter(pk=welcome_series.step_map["welcome"].template_id).update(
        subject="Welcome {% if %}"
    )
    journeys_enroll_contact(journey=welcome_series, contact=nia)

    advance(run_worker)

    message = Message.objects.get()
    assert message.status == "failed"
    assert "if" in message.error
    welcome_run = StepRun.objects.get(step=welcome_series.step_map["welcome"])
    assert welcome_run.message_id == message.pk
    assert Enrollment.objects.get().state == Enrollment.State.WAITING
    assert smtp_server.messages == []


def test_contact_without_email_moves_on_with_a_skip_recorded(
    welcome_series, run_worker, smtp_server
):
    contact = ContactFactory(email=None, user_id="app-42")
    journeys_enroll_contact(journey=welcome_series, contact=contact)

    advance(run_worker)

    message = Message.objects.get()
    assert (message.status, message.skip_reason) == ("skipped", "no_address")
    assert Enrollment.objects.get().state == Enrollment.State.WAITING


def test_a_step_that_raises_is_retried_a_bounded_number_of_times_then_failed(
    welcome_series, nia, run_worker, smtp_server
):
    # Given Nia is at the condition and the condition step breaks
    Enrollment.objects.create(
        journey=welcome_series,
        contact=nia,
        current_step=welcome_series.step_map["condition"],
        sequence=2,
        entered_at=timezone.now(),
        next_run_at=timezone.now(),
    )
    with mock.patch.object(
        ConditionStep, "matches", autospec=True, side_effect=RuntimeError("broken")
    ):
        advance(run_worker)
        enrollment = Enrollment.objects.get()
        assert enrollment.state == Enrollment.State.WAITING
        assert enrollment.attempts == 1
        assert "broken" in enrollment.last_error
        # When every retry fails too
        for hours in (1, 2, 3, 4):
            with time_machine.travel(timezone.now() + timedelta(hours=hours)):
                advance(run_worker)

    # Then the enrollment is marked failed (not lost, not looping), with each try recorded
    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.FAILED
    assert enrollment.lease_token is None
    outcomes = list(
        StepRun.objects.filter(enrollment=enrollment)
        .order_by("id")
        .values_list("outcome", flat=True)
    )
    assert outcomes == ["retry", "retry", "retry", "failed"]
