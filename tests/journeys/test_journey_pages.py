"""A journey opens on its diagram, which builds no form; a step's box opens
the editor on that step's form alone, and "Edit journey" the editor with
every step's form; each costs the same queries at 20 steps as at 40."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from journeys.models import Journey, SendMessageStep
from tests.factories import JourneyFactory, TemplateFactory, UserFactory
from tests.journeys.branching import journey_with_splits

pytestmark = pytest.mark.django_db


@pytest.fixture
def templates(db):
    return [TemplateFactory(name=f"Template {n}") for n in range(3)]


def diagram_url(journey):
    return reverse("admin:journeys_journey_diagram", args=[journey.pk])


def editor_url(journey):
    return reverse("admin:journeys_journey_change", args=[journey.pk])


def queries_for(client, url):
    client.get(url)  # the content types, read once per process, are read here
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def test_the_journey_list_opens_each_journey_on_its_diagram(staff_client):
    journey = JourneyFactory(name="Onboarding")

    response = staff_client.get(reverse("admin:journeys_journey_changelist"))

    body = response.content.decode()
    assert f'<a href="{diagram_url(journey)}">Onboarding</a>' in body


def test_the_diagram_page_builds_no_form_and_each_step_opens_the_editor_on_its_form(
    staff_client, templates
):
    journey = journey_with_splits(name="Long", blocks=4, templates=templates)

    response = staff_client.get(diagram_url(journey))

    body = response.content.decode()
    assert response.status_code == 200
    assert len(re.findall(r'class="step" id="diagram-step-\d+"', body)) == 40
    assert "<form" in body and 'name="steps-TOTAL_FORMS"' not in body
    assert 'id="steps-group"' not in body and "<select" not in body
    links = re.findall(r'<a href="([^"]+)"><g class="step"', body)
    first = journey.steps.order_by("position")[:3]
    assert links[:3] == [f"{editor_url(journey)}?step={step.pk}#steps-0" for step in first]
    assert f'href="{editor_url(journey)}" id="journey-edit"' in body


def test_the_editor_has_the_step_forms_the_diagram_links_to(staff_client, templates):
    journey = journey_with_splits(name="Long", blocks=2, templates=templates)

    response = staff_client.get(editor_url(journey))

    body = response.content.decode()
    keys = re.findall(r'name="steps-(\d+)-key"[^>]*value="([^"]+)"', body)
    ordered = list(journey.steps.order_by("position").values_list("key", flat=True))
    assert [key for _, key in keys] == ordered
    assert [int(index) for index, _ in keys] == list(range(20))
    assert 'id="steps-0"' in body and 'id="steps-19"' in body
    assert f'href="{diagram_url(journey)}" id="journey-diagram-link"' in body


def test_each_send_step_form_keeps_its_own_template_chosen(staff_client, templates):
    journey = journey_with_splits(name="Long", blocks=3, templates=templates)

    response = staff_client.get(editor_url(journey))

    body = response.content.decode()
    chosen = re.findall(
        r'<select name="steps-(\d+)-template"[^>]*>.*?<option value="(\d+)" selected>',
        body,
        flags=re.S,
    )
    sends = SendMessageStep.objects.filter(journey=journey).order_by("position")
    order = list(journey.steps.order_by("position").values_list("pk", flat=True))
    assert [(int(i), int(t)) for i, t in chosen] == [
        (order.index(step.pk), step.template_id) for step in sends
    ]
    # every template is offered on every send step's form
    first = body[body.index('name="steps-0-template"') :]
    first = first[: first.index("</select>")]
    assert all(f'value="{template.pk}"' in first for template in templates)


def test_the_diagram_page_costs_the_same_queries_for_20_or_40_steps(staff_client, templates):
    twenty = journey_with_splits(name="Twenty", blocks=2, templates=templates)
    forty = journey_with_splits(name="Forty", blocks=4, templates=templates)

    assert queries_for(staff_client, diagram_url(twenty)) == queries_for(
        staff_client, diagram_url(forty)
    )


def test_the_editor_costs_the_same_queries_for_20_or_40_steps(staff_client, templates):
    twenty = journey_with_splits(name="Twenty", blocks=2, templates=templates)
    forty = journey_with_splits(name="Forty", blocks=4, templates=templates)

    assert queries_for(staff_client, editor_url(twenty)) == queries_for(
        staff_client, editor_url(forty)
    )


def test_staff_who_may_view_journeys_see_the_diagram_and_others_are_refused(client, templates):
    journey = journey_with_splits(name="Long", blocks=1, templates=templates)
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_journey"))
    outsider = UserFactory(is_staff=True)

    client.force_login(viewer)
    seen = client.get(diagram_url(journey))
    client.force_login(outsider)
    refused = client.get(diagram_url(journey))

    assert seen.status_code == 200
    assert 'id="journey-diagram"' in seen.content.decode()
    assert "Journey settings and steps" in seen.content.decode()
    assert refused.status_code == 403
    assert Journey.objects.filter(pk=journey.pk).exists()


def test_a_journey_that_does_not_exist_goes_back_to_the_list(staff_client):
    response = staff_client.get(reverse("admin:journeys_journey_diagram", args=[987654]))

    assert response.status_code == 302
    assert response.url == reverse("admin:index")


def test_the_editor_offers_the_journeys_keys_in_one_list_for_every_key_field(
    staff_client, templates
):
    journey = journey_with_splits(name="Long", blocks=2, templates=templates)

    response = staff_client.get(editor_url(journey))

    body = response.content.decode()
    assert body.count("<datalist") == 1
    datalist = body[body.index('<datalist id="journey-step-keys">') :]
    datalist = datalist[: datalist.index("</datalist>")]
    offered = re.findall(r'<option value="([^"]+)">', datalist)
    assert offered == list(journey.steps.order_by("position", "id").values_list("key", flat=True))
    for name in ("steps-2-go_yes", "steps-0-go_next", "steps-0-move_contacts_to"):
        (field,) = re.findall(rf'<input[^>]*name="{name}"[^>]*>', body)
        assert 'list="journey-step-keys"' in field


def test_a_journey_without_steps_opens_on_a_page_that_leads_to_the_editor(staff_client):
    journey = JourneyFactory(name="Empty")

    response = staff_client.get(diagram_url(journey))

    body = response.content.decode()
    assert response.status_code == 200
    assert "No steps yet" in body
    assert f'<a href="{editor_url(journey)}#steps-group">' in body
