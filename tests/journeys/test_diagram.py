"""The journey's page opens on its diagram: steps, labelled connections, and
each step's contacts and message figures."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from journeys.diagram import journey_layout
from journeys.models import Enrollment, RandomSplitStep, StepRun
from journeys.services.graph import JourneySteps, step_connect
from messaging.models import Message
from tests.factories import (
    ContactFactory,
    DelayStepFactory,
    EnrollmentFactory,
    ExitStepFactory,
    JourneyFactory,
    MessageFactory,
    SendMessageStepFactory,
)

pytestmark = pytest.mark.django_db


def test_the_page_shows_each_step_its_connections_and_its_figures(staff_client, welcome_series):
    wait, welcome = welcome_series.step_map["wait"], welcome_series.step_map["welcome"]
    for _ in range(3):
        EnrollmentFactory(journey=welcome_series, contact=ContactFactory(), current_step=wait,
                          state=Enrollment.State.WAITING)  # fmt: skip
    now = timezone.now()
    for opened in (True, True, False, False):
        enrollment = EnrollmentFactory(journey=welcome_series, contact=ContactFactory(),
                                       state=Enrollment.State.COMPLETED)  # fmt: skip
        message = MessageFactory(contact=enrollment.contact, template=welcome.template,
                                 origin=Message.Origin.JOURNEY, origin_id=enrollment.pk,
                                 origin_step_id=welcome.pk, sent_at=now, delivered_at=now,
                                 opened_at=now if opened else None)  # fmt: skip
        StepRun.objects.create(enrollment=enrollment, step=welcome, sequence=0,
                               outcome="continued", message=message, started_at=now,
                               finished_at=now)  # fmt: skip

    response = staff_client.get(reverse("admin:journeys_journey_diagram", args=[welcome_series.pk]))

    body = response.content.decode()
    diagram = body[body.index('<svg xmlns="http://www.w3.org/2000/svg" class="journey-diagram"') :]
    diagram = diagram[: diagram.index("</svg>")]
    keys = re.findall(r'class="step" id="diagram-step-\d+" data-key="([^"]+)"', diagram)
    assert sorted(keys) == ["created-project", "done", "nudge", "wait", "welcome"]
    assert re.findall(r'data-label="(yes|no)"', diagram) == ["yes", "no"]
    assert "3 here now" in diagram
    assert "sent 4 · delivered 4 (100%)" in diagram
    assert "opened 2 (50%) · clicked 0 (0%)" in diagram
    editor = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    assert f'href="{editor}?step={welcome.pk}#steps-0"' in diagram  # the editor on its form
    assert Message.objects.count() == 4


def test_text_from_the_marketer_is_escaped_in_the_drawing(staff_client):
    journey = JourneyFactory(name="Escapes")
    SendMessageStepFactory(journey=journey, key="hello", position=1, name="<script>x</script>")

    response = staff_client.get(reverse("admin:journeys_journey_diagram", args=[journey.pk]))

    body = response.content.decode()
    assert "<script>x</script>" not in body
    assert "&lt;script&gt;x&lt;/script&gt;" in body


def test_a_loop_back_is_drawn_without_stacking_steps_and_splits_fan_out():
    journey = JourneyFactory(name="Big")
    split = RandomSplitStep.objects.create(journey=journey, key="ab", position=1,
                                           weights="1,1,1")  # fmt: skip
    branches = [DelayStepFactory(journey=journey, key=f"wait-{i}", position=2 + i)
                for i in range(3)]  # fmt: skip
    end = ExitStepFactory(journey=journey, key="end", position=9)
    step_connect(step=split, targets=dict(zip("abc", branches, strict=True)))
    for branch in branches[:2]:
        step_connect(step=branch, targets={"next": end})
    step_connect(step=branches[2], targets={"next": split})  # loops back

    layout = journey_layout(JourneySteps.load(journey.pk))

    layers = {layout.nodes[s.pk].layer for s in branches}
    assert layers == {1}
    assert len({(n.x, n.y) for n in layout.nodes.values()}) == len(layout.nodes)
    assert [e.back for e in layout.edges if e.target == split.pk] == [True]
    assert layout.nodes[end.pk].layer == 2


def test_the_page_costs_the_same_queries_for_a_journey_of_5_or_40_steps(staff_client):
    def queries_for(n):
        journey = JourneyFactory(name=f"Long {n}")
        for i in range(n):
            DelayStepFactory(journey=journey, key=f"d{i}", position=i)
        with CaptureQueriesContext(connection) as captured:
            staff_client.get(reverse("admin:journeys_journey_diagram", args=[journey.pk]))
        return len(captured)

    assert queries_for(5) == queries_for(40)
