"""Copying a journey: a draft with the same settings, triggers, steps and
connections, and none of the original's contacts; from the list, for drafters
and managers alike."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from journeys.models import Connection, Enrollment, Journey, JourneyTrigger
from journeys.services.copying import JourneyCopyError, journey_copy
from tests.factories import (
    ConditionStepFactory,
    DelayStepFactory,
    EnrollmentFactory,
    ExitStepFactory,
    JourneyTriggerFactory,
    SendMessageStepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:journeys_journey_changelist")


def signed_in(role):
    user = UserFactory(is_superuser=False, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client, user


def shape(journey):
    """What a copy must reproduce: steps in order with their type and
    settings, connections by key, triggers."""
    steps = [
        (type(step).__name__, step.key, step.name, step.position)
        for step in journey.steps.order_by("position", "id")
    ]
    connections = sorted(
        Connection.objects.filter(step__journey=journey).values_list(
            "step__key", "label", "target__key"
        )
    )
    triggers = sorted(journey.triggers.values_list("kind", "event_name"))
    settings = (journey.folder, journey.reentry, journey.goal_event_name, journey.audience)
    return steps, connections, triggers, settings


def test_a_copy_is_a_draft_with_the_same_steps_connections_and_triggers(welcome_series):
    JourneyTriggerFactory(journey=welcome_series, kind=JourneyTrigger.Kind.API)
    Journey.objects.filter(pk=welcome_series.pk).update(
        folder="Onboarding", goal_event_name="project_created", reentry="after_exit"
    )
    welcome_series.refresh_from_db()
    EnrollmentFactory(journey=welcome_series, state=Enrollment.State.WAITING)
    maria = UserFactory(username="maria")

    copy = journey_copy(journey=welcome_series, actor=maria)

    assert copy.name == "Welcome series (copy)"
    assert copy.state == Journey.State.DRAFT
    assert (copy.created_by, copy.modified_by) == (maria, maria)
    assert shape(copy) == shape(welcome_series)
    assert len(shape(copy)[1]) >= 2  # the condition's yes and no really were copied
    assert not Enrollment.objects.filter(journey=copy).exists()
    assert welcome_series.steps.count() == 5  # the original is untouched


def test_copying_again_finds_a_free_name(welcome_series):
    first = journey_copy(journey=welcome_series)
    second = journey_copy(journey=welcome_series)

    assert (first.name, second.name) == ("Welcome series (copy)", "Welcome series (copy 2)")


def test_a_copy_can_be_given_a_name_but_not_a_taken_one(welcome_series):
    named = journey_copy(journey=welcome_series, name="Welcome, take two")

    with pytest.raises(JourneyCopyError, match="already exists"):
        journey_copy(journey=welcome_series, name="Welcome, take two")

    assert named.name == "Welcome, take two"
    assert Journey.objects.filter(name__startswith="Welcome, take two").count() == 1


def test_a_drafter_copies_a_live_journey_from_the_list():
    live = Journey.objects.create(name="Cart", state=Journey.State.LIVE)
    email = SendMessageStepFactory(journey=live, key="remind", position=1)
    DelayStepFactory(journey=live, key="wait", position=2)
    done = ExitStepFactory(journey=live, key="done", position=4)
    ConditionStepFactory(
        journey=live, key="bought", position=3, connections={"yes": done, "no": email}
    )
    drafter, user = signed_in("Journey drafters")

    response = drafter.post(
        CHANGELIST, {"action": "copy", "_selected_action": [live.pk]}, follow=True
    )

    copy = Journey.objects.get(name="Cart (copy)")
    assert copy.state == Journey.State.DRAFT
    assert copy.created_by == user
    assert shape(copy) == shape(live)
    shown = [str(m) for m in response.context["messages"]]
    url = reverse("admin:journeys_journey_change", args=[copy.pk])
    assert f'Copied “Cart” as the draft <a href="{url}">Cart (copy)</a>.' in shown
    # The drafter may edit the copy: it is a draft.
    assert drafter.get(url).context["has_change_permission"] is True


def test_a_viewer_cannot_copy(welcome_series):
    viewer, _ = signed_in("Journey viewers")

    action_form = viewer.get(CHANGELIST).context["action_form"]
    offered = [name for name, _ in action_form.fields["action"].choices] if action_form else []
    viewer.post(CHANGELIST, {"action": "copy", "_selected_action": [welcome_series.pk]})

    assert "copy" not in offered
    assert not Journey.objects.filter(name__contains="(copy)").exists()
