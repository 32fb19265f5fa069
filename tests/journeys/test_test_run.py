"""A test run: the journey walked for one contact, the path shown, nothing kept."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from contacts.models import Contact, ListMembership
from journeys.models import (
    ConditionStep,
    Enrollment,
    Journey,
    UpdateContactStep,
    WaitForEventStep,
)
from journeys.services.graph import step_connect
from journeys.services.testing import journey_test_run
from messaging.models import Message
from tests.factories import ContactListFactory, ExitStepFactory, JourneyFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def path_of(trial):
    return [(step.key, step.branch) for step in trial.steps]


def test_the_path_is_walked_with_delays_skipped_and_sends_going_to_the_test_address(
    welcome_series, nia, smtp_server
):
    trial = journey_test_run(journey=welcome_series, contact=nia, send_to="qa@example.com")

    assert path_of(trial) == [
        ("welcome", ""),
        ("wait", ""),
        ("created-project", "no"),
        ("nudge", ""),
        ("done", ""),
    ]
    assert trial.ended == "completed at an exit step"
    assert "would wait until" in trial.steps[1].detail
    assert [m["To"] for m in smtp_server.messages] == ["qa@example.com", "qa@example.com"]
    assert [m["Subject"] for m in smtp_server.messages] == [
        "[Test] Welcome, Nia!",
        "[Test] Need a hand, Nia?",
    ]
    assert set(Message.objects.values_list("is_test", flat=True)) == {True}
    assert not Enrollment.objects.exists()


def test_without_a_test_address_nothing_is_sent(welcome_series, nia, smtp_server):
    trial = journey_test_run(journey=welcome_series, contact=nia)

    assert smtp_server.messages == []
    assert not Message.objects.exists()
    assert "nothing sent" in trial.steps[0].detail
    assert [result for _, result in trial.sends] == [None, None]


def test_what_steps_change_is_seen_by_the_next_steps_then_undone():
    journey = JourneyFactory(name="Scoring", state=Journey.State.DRAFT)
    newsletter = ContactListFactory(name="Newsletter")
    UpdateContactStep.objects.create(journey=journey, key="pro", position=1, action="set",
                                     attribute="plan", value='"pro"')  # fmt: skip
    UpdateContactStep.objects.create(journey=journey, key="join", position=2,
                                     action="add_to_list", contact_list=newsletter)  # fmt: skip
    check = ConditionStep.objects.create(journey=journey, key="is-pro", position=3,
                                         kind="attribute", attribute="plan", operator="eq",
                                         value='"pro"')  # fmt: skip
    yes = ExitStepFactory(journey=journey, key="yes", position=4)
    no = ExitStepFactory(journey=journey, key="no", position=5)
    step_connect(step=check, targets={"yes": yes, "no": no})
    ada = Contact.objects.create(email="ada@example.com", attributes={"plan": "free"})

    trial = journey_test_run(journey=journey, contact=ada)

    assert path_of(trial) == [("pro", ""), ("join", ""), ("is-pro", "yes"), ("yes", "")]
    ada.refresh_from_db()
    assert ada.attributes == {"plan": "free"}
    assert not ListMembership.objects.exists()


@pytest.mark.parametrize(("events_happen", "branch"), [(True, "event"), (False, "timeout")])
def test_a_wait_for_an_event_takes_the_branch_asked_for(events_happen, branch):
    journey = JourneyFactory(name="Cart")
    wait = WaitForEventStep.objects.create(journey=journey, key="bought", position=1,
                                           event_name="purchase")  # fmt: skip
    step_connect(step=wait, targets={
        "event": ExitStepFactory(journey=journey, key="thanks", position=2),
        "timeout": ExitStepFactory(journey=journey, key="remind", position=3),
    })  # fmt: skip
    ada = Contact.objects.create(email="ada@example.com")

    trial = journey_test_run(journey=journey, contact=ada, events_happen=events_happen)

    assert path_of(trial)[0] == ("bought", branch)
    assert path_of(trial)[1][0] == ("thanks" if events_happen else "remind")


def test_a_journey_without_steps_says_so():
    trial = journey_test_run(
        journey=JourneyFactory(), contact=Contact.objects.create(email="a@b.c")
    )

    assert (trial.steps, trial.ended) == ([], "the journey has no steps")


def signed_in(*codenames, superuser=False):
    """Staff with these journeys permissions (the roles' groups are not here:
    these tests commit, and committed tests start from empty tables)."""
    user = UserFactory(is_superuser=superuser, is_staff=True, email="me@example.com")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="journeys", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


DRAFTER = ("view_journey", "change_journey", "add_journey")


def test_the_admin_test_run_page_shows_the_path(welcome_series, nia, smtp_server):
    welcome_series.state = Journey.State.DRAFT
    welcome_series.save()
    client = signed_in(*DRAFTER)
    url = reverse("admin:journeys_journey_test_run", args=[welcome_series.pk])
    change = client.get(reverse("admin:journeys_journey_change", args=[welcome_series.pk]))
    assert url in change.content.decode()

    response = client.post(url, {"contact": "nia@example.com", "send_to": "me@example.com",
                                 "trigger_data": "{}"})  # fmt: skip

    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="test-run-path"' in body
    assert "completed at an exit step" in body
    assert [m["To"] for m in smtp_server.messages] == ["me@example.com", "me@example.com"]


def test_an_unknown_contact_is_a_form_error(welcome_series):
    client = signed_in(superuser=True)
    url = reverse("admin:journeys_journey_test_run", args=[welcome_series.pk])

    response = client.post(url, {"contact": "nobody@example.com", "trigger_data": "{}"})

    assert "No contact has the email or userId “nobody@example.com”." in response.content.decode()


def test_a_viewer_may_not_run_tests(welcome_series, nia, smtp_server):
    client = signed_in("view_journey")
    url = reverse("admin:journeys_journey_test_run", args=[welcome_series.pk])

    response = client.post(url, {"contact": "nia@example.com", "send_to": "x@example.com"})

    assert response.status_code == 403
    assert smtp_server.messages == []
