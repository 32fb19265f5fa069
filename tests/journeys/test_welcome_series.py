"""The spine: an event through the API starts a journey whose emails arrive
at a real SMTP server, driven by the real scheduler pass and rq worker."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from contacts.services import events_dispatch_all
from journeys.models import Enrollment, StepRun
from journeys.services.scheduling import scheduler_tick
from messaging.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def track(api_client, email, event_name, **data):
    response = api_client.post(
        "/api/events/track",
        {"email": email, "eventName": event_name, "dataFields": data},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response


def advance(run_worker):
    """What the scheduler does in one pass, then the workers: new events reach
    journeys, due enrollments go to the workers."""
    events_dispatch_all()
    handed = scheduler_tick()
    run_worker()
    return handed


def test_signup_sends_welcome_then_nudge_when_no_project(
    welcome_series, nia, api_client, smtp_server, run_worker
):
    # Given a live welcome series and a contact called Nia
    # When she signs up
    track(api_client, "nia@example.com", "signed_up", plan="free")
    assert advance(run_worker) == 1

    # Then the welcome email, with her name, arrives at the mail server
    assert len(smtp_server.messages) == 1
    welcome = smtp_server.messages[0]
    assert welcome["Subject"] == "Welcome, Nia!"
    assert welcome.envelope_recipients == ["nia@example.com"]
    assert "Hi Nia, glad you joined." in welcome.get_body(("html",)).get_content()
    assert "Hi Nia, glad you joined." in welcome.get_body(("plain",)).get_content()
    # and she waits two days on the delay
    enrollment = Enrollment.objects.get(contact=nia)
    assert enrollment.state == Enrollment.State.WAITING
    assert enrollment.current_step_id == welcome_series.step_map["condition"].pk
    assert enrollment.next_run_at > timezone.now() + timedelta(days=1, hours=23)

    # When a day passes, nothing more happens
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        assert advance(run_worker) == 0
    assert len(smtp_server.messages) == 1

    # When the two days are over, the condition finds no project: the nudge goes out
    with time_machine.travel(timezone.now() + timedelta(days=2, minutes=1)):
        assert advance(run_worker) == 1
    assert [m["Subject"] for m in smtp_server.messages] == ["Welcome, Nia!", "Need a hand, Nia?"]
    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED  # the exit step: the journey's end
    assert enrollment.lease_token is None
    condition_run = StepRun.objects.get(step=welcome_series.step_map["condition"])
    assert condition_run.branch == "no"
    assert list(
        StepRun.objects.filter(enrollment=enrollment)
        .order_by("sequence")
        .values_list("step__key", "outcome")
    ) == [
        ("welcome", "continued"),
        ("wait", "waiting"),
        ("created-project", "continued"),
        ("nudge", "continued"),
        ("done", "completed"),
    ]
    assert Message.objects.filter(contact=nia, status=Message.Status.SENT).count() == 2


def test_contact_who_creates_a_project_gets_no_nudge(
    welcome_series, nia, api_client, smtp_server, run_worker
):
    # Given Nia signed up and got the welcome email
    track(api_client, "nia@example.com", "signed_up")
    advance(run_worker)
    assert len(smtp_server.messages) == 1

    # When she creates a project the next day
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        track(api_client, "nia@example.com", "project_created", name="Launch")

    # Then after the delay the condition says yes and she leaves without a nudge
    with time_machine.travel(timezone.now() + timedelta(days=2, minutes=1)):
        assert advance(run_worker) == 1
    assert len(smtp_server.messages) == 1
    assert StepRun.objects.get(step=welcome_series.step_map["condition"]).branch == "yes"
    enrollment = Enrollment.objects.get(contact=nia)
    assert enrollment.state == Enrollment.State.COMPLETED
    assert not StepRun.objects.filter(step=welcome_series.step_map["nudge"]).exists()


def test_a_project_created_before_signing_up_does_not_count(
    welcome_series, nia, api_client, smtp_server, run_worker
):
    # Given Nia created a project before she entered the journey
    track(api_client, "nia@example.com", "project_created")
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        track(api_client, "nia@example.com", "signed_up")
        advance(run_worker)

    # When the delay is over
    with time_machine.travel(timezone.now() + timedelta(days=2, minutes=10)):
        advance(run_worker)

    # Then the condition only looked at events since entry: she gets the nudge
    assert StepRun.objects.get(step=welcome_series.step_map["condition"]).branch == "no"
    assert len(smtp_server.messages) == 2


def test_signup_for_an_unknown_email_creates_the_contact_and_enrolls_it(
    welcome_series, api_client, smtp_server, run_worker
):
    track(api_client, "Newcomer@Example.com", "signed_up")
    advance(run_worker)

    assert Enrollment.objects.get().contact.email == "newcomer@example.com"
    assert smtp_server.messages[0].envelope_recipients == ["newcomer@example.com"]
    # No name known: the template's variable renders empty, not as an error.
    assert smtp_server.messages[0]["Subject"] == "Welcome, !"
