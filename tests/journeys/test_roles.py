"""Who may do what with journeys: viewers look, drafters build drafts, managers
go live, pause and archive. Enforced by the server, whatever the page offers."""

import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from journeys.models import Journey
from journeys.services.graph import step_connect
from tests.admin_pages import form_data
from tests.factories import JourneyFactory, SendMessageStepFactory, UserFactory
from tests.journeys.test_step_types import all_step_types

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:journeys_journey_changelist")


def signed_in(role):
    user = UserFactory(is_superuser=False, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def draft():
    journey = JourneyFactory(name="Spring sale", state=Journey.State.DRAFT)
    SendMessageStepFactory(journey=journey, key="announce", position=1)
    return journey


@pytest.fixture
def live():
    journey = JourneyFactory(name="Welcome", state=Journey.State.LIVE)
    SendMessageStepFactory(journey=journey, key="hello", position=1)
    return journey


def change_url(journey):
    return reverse("admin:journeys_journey_change", args=[journey.pk])


def test_the_three_roles_exist_with_what_they_may_do():
    def codenames(name):
        return set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))

    viewers, drafters, managers = (
        codenames("Journey viewers"),
        codenames("Journey drafters"),
        codenames("Journey managers"),
    )
    assert {"view_journey", "view_enrollment", "view_steprun"} <= viewers
    assert not {p for p in viewers if not p.startswith("view_")}
    assert {"add_journey", "change_journey", "change_sendmessagestep"} <= drafters
    assert "activate_journey" not in drafters and "delete_journey" not in drafters
    assert {"activate_journey", "delete_journey", "change_enrollment"} <= managers


def test_every_step_type_is_covered_by_the_roles():
    def codenames(name):
        return set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))

    types = [cls._meta.model_name for cls in all_step_types()]
    assert {f"view_{t}" for t in types} <= codenames("Journey viewers")
    for role in ("Journey drafters", "Journey managers"):
        assert {f"{a}_{t}" for t in types for a in ("add", "change", "delete")} <= codenames(role)


def test_a_viewer_sees_journeys_but_cannot_change_one(draft):
    viewer = signed_in("Journey viewers")

    assert viewer.get(CHANGELIST).status_code == 200
    page = viewer.get(change_url(draft))
    refused = viewer.post(change_url(draft), {"name": "Renamed"})

    assert page.status_code == 200
    assert refused.status_code == 403
    draft.refresh_from_db()
    assert draft.name == "Spring sale"


def test_a_drafter_edits_a_draft_but_its_state_is_not_the_forms_to_change(draft):
    drafter = signed_in("Journey drafters")
    data = form_data(drafter.get(change_url(draft)))

    response = drafter.post(change_url(draft), {**data, "name": "Spring sale 2", "state": "live"})

    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.name, draft.state) == ("Spring sale 2", Journey.State.DRAFT)


@pytest.mark.parametrize("action", ["go_live", "pause", "archive"])
def test_a_drafter_cannot_go_live_pause_or_archive(draft, live, action):
    drafter = signed_in("Journey drafters")

    action_form = drafter.get(CHANGELIST).context["action_form"]  # None: no action at all
    offered = [name for name, _ in action_form.fields["action"].choices] if action_form else []
    drafter.post(CHANGELIST, {"action": action, "_selected_action": [draft.pk, live.pk]})

    assert action not in offered
    draft.refresh_from_db()
    live.refresh_from_db()
    assert (draft.state, live.state) == (Journey.State.DRAFT, Journey.State.LIVE)


def test_a_drafter_cannot_change_or_delete_a_live_journey(live):
    drafter = signed_in("Journey drafters")

    page = drafter.get(change_url(live))
    changed = drafter.post(change_url(live), {"name": "Renamed"})
    deleted = drafter.post(
        reverse("admin:journeys_journey_delete", args=[live.pk]), {"post": "yes"}
    )

    assert page.status_code == 200  # shown read-only
    assert (changed.status_code, deleted.status_code) == (403, 403)
    live.refresh_from_db()
    assert (live.name, live.state) == ("Welcome", Journey.State.LIVE)


def editable_step_fields(body):
    """The step fields a browser would let one type into or choose."""
    return [
        tag
        for tag in re.findall(r'<(?:input|select|textarea)[^>]*name="steps-\d+-[^"]*"[^>]*>', body)
        if 'type="hidden"' not in tag
    ]


@pytest.mark.parametrize(
    "role, journey", [("Journey viewers", "draft"), ("Journey drafters", "live")]
)
def test_steps_are_shown_read_only_to_staff_who_may_not_change_the_journey(role, journey, request):
    journey = request.getfixturevalue(journey)
    second = SendMessageStepFactory(journey=journey, key="follow-up", position=2)
    step_connect(step=journey.steps.get(position=1), targets={"next": second})
    staff = signed_in(role)

    body = staff.get(change_url(journey)).content.decode()

    assert editable_step_fields(body) == []
    assert 'id="sendmessagestep-empty"' not in body  # no blank form to add a step
    assert "next → follow-up" in body and "next → the next step below" in body
    assert 'name="_save"' not in body


def test_a_drafter_edits_the_steps_of_a_draft(draft):
    drafter = signed_in("Journey drafters")

    body = drafter.get(change_url(draft)).content.decode()

    assert 'name="steps-0-key"' in "".join(editable_step_fields(body))
    assert 'id="sendmessagestep-empty"' in body


def test_the_read_only_steps_cost_the_same_queries_for_2_or_4_steps(draft):
    other = JourneyFactory(name="Other", state=Journey.State.DRAFT)
    for journey, count in ((draft, 2), (other, 4)):
        for position in range(journey.steps.count() + 1, count + 1):
            SendMessageStepFactory(journey=journey, key=f"s{position}", position=position)
    viewer = signed_in("Journey viewers")

    def queries(journey):
        viewer.get(change_url(journey))
        with CaptureQueriesContext(connection) as captured:
            viewer.get(change_url(journey))
        return len(captured)

    assert queries(draft) == queries(other)


def test_a_manager_goes_live_pauses_and_archives(draft):
    manager = signed_in("Journey managers")

    manager.post(CHANGELIST, {"action": "go_live", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.state == Journey.State.LIVE
    manager.post(CHANGELIST, {"action": "pause", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.state == Journey.State.PAUSED
    manager.post(CHANGELIST, {"action": "archive", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.state == Journey.State.ARCHIVED


def test_a_new_journey_is_a_draft_whatever_the_form_says():
    manager = signed_in("Journey managers")

    response = manager.post(
        reverse("admin:journeys_journey_add"),
        {
            "name": "Half-built",
            "state": "live",
            "triggers-TOTAL_FORMS": 1,
            "triggers-INITIAL_FORMS": 0,
            "triggers-MIN_NUM_FORMS": 0,
            "triggers-MAX_NUM_FORMS": 1000,
            "triggers-0-kind": "event",
            "triggers-0-event_name": "signed_up",
            "triggers-0-event_filter": "{}",
            "triggers-0-offset_days": 0,
            "triggers-0-every_unit": "days",
            "audience": "{}",
            "reentry": "never",
            "goal_window_days": 30,
            "steps-TOTAL_FORMS": 0,
            "steps-INITIAL_FORMS": 0,
            "steps-MIN_NUM_FORMS": 0,
            "steps-MAX_NUM_FORMS": 1000,
        },
    )

    assert response.status_code == 302
    assert Journey.objects.get(name="Half-built").state == Journey.State.DRAFT


def test_going_live_on_a_trigger_another_live_journey_uses_warns_but_goes_live(live):
    manager = signed_in("Journey managers")
    second = JourneyFactory(
        name="Welcome, take two", state=Journey.State.DRAFT, trigger_event_name="signed_up"
    )
    SendMessageStepFactory(journey=second, key="hi", position=1)

    response = manager.post(
        CHANGELIST, {"action": "go_live", "_selected_action": [second.pk]}, follow=True
    )

    second.refresh_from_db()
    assert second.state == Journey.State.LIVE
    shown = [str(m) for m in response.context["messages"]]
    assert (
        "“Welcome, take two” starts on event “signed_up”, like the live journey “Welcome”: "
        "a contact who sets it off enters each of them."
    ) in shown
