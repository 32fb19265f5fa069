"""The editor opened on one step (`?step=<id>`, the diagram's link): that
step's form alone beside the journey's settings, checked and saved against
the journey's other steps as the whole editor is."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from journeys.models import DelayStep, Enrollment, Step
from journeys.services.graph import step_connections
from tests.admin_pages import form_data
from tests.factories import ContactFactory, EnrollmentFactory, TemplateFactory
from tests.journeys.branching import journey_with_splits

pytestmark = pytest.mark.django_db


def step_url(journey, step):
    return f"{reverse('admin:journeys_journey_change', args=[journey.pk])}?step={step.pk}"


def post_on_step(client, journey, step, typed):
    """The step's page posted back as a browser would, with `typed` changed."""
    url = step_url(journey, step)
    data = form_data(client.get(url))
    data.update(typed)
    return client.post(url, data)


def step_page(client, journey, step):
    response = client.get(step_url(journey, step))
    assert response.status_code == 200
    return response


def test_the_page_of_one_step_has_that_steps_form_alone(staff_client, welcome_series):
    condition = welcome_series.step_map["condition"]

    response = step_page(staff_client, welcome_series, condition)

    body = response.content.decode()
    data = form_data(response)
    assert data["steps-TOTAL_FORMS"] == 1
    assert data["steps-0-id"] == condition.pk
    assert data["steps-0-go_yes"] == "done" and data["steps-0-go_no"] == "nudge"
    assert 'id="steps-0"' in body and 'id="steps-1"' not in body
    assert "the form of one step, “created-project”" in body
    whole = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    assert f'<a href="{whole}">Edit every step</a>' in body
    # every key of the journey is still offered for the connections
    for key in ("welcome", "wait", "nudge", "done"):
        assert f'<option value="{key}"></option>' in body


def test_a_connection_to_a_step_whose_form_is_not_on_the_page_is_saved(
    staff_client, welcome_series
):
    condition = welcome_series.step_map["condition"]

    response = post_on_step(staff_client, welcome_series, condition, {"steps-0-go_no": "welcome"})

    assert response.status_code == 302
    diagram = reverse("admin:journeys_journey_diagram", args=[welcome_series.pk])
    assert response.url == f"{diagram}#diagram-step-{condition.pk}"
    connections = step_connections(step=condition)
    assert connections["no"].key == "welcome" and connections["yes"].key == "done"
    # the other steps are as they were
    keys = list(welcome_series.steps.order_by("position").values_list("key", flat=True))
    assert keys == ["welcome", "wait", "created-project", "nudge", "done"]


def test_a_key_another_step_uses_is_an_error_though_its_form_is_not_on_the_page(
    staff_client, welcome_series
):
    nudge = welcome_series.step_map["nudge"]

    response = post_on_step(staff_client, welcome_series, nudge, {"steps-0-key": "wait"})

    assert response.status_code == 200
    assert "already uses the key “wait”" in response.content.decode()
    assert Step.objects.filter(pk=nudge.pk, key="nudge").exists()


def test_a_connection_to_a_key_no_step_has_is_an_error(staff_client, welcome_series):
    condition = welcome_series.step_map["condition"]

    response = post_on_step(staff_client, welcome_series, condition, {"steps-0-go_no": "nowhere"})

    assert response.status_code == 200
    assert "No step of this journey has the key “nowhere”" in response.content.decode()
    assert step_connections(step=condition)["no"].key == "nudge"


def test_a_step_added_on_the_page_of_one_step_goes_after_every_step(staff_client, welcome_series):
    welcome = welcome_series.step_map["welcome"]
    url = step_url(welcome_series, welcome)
    data = form_data(staff_client.get(url))
    data["steps-TOTAL_FORMS"] = 2
    data.update(
        {
            "steps-1-polymorphic_ctype": ContentType.objects.get_for_model(DelayStep).pk,
            "steps-1-name": "Wait",  # its key would be "wait", which a step off the page has
            "steps-1-wait_until": "duration",
            "steps-1-amount": 1,
            "steps-1-unit": "hours",
            "steps-1-offset_days": 0,
        }
    )

    response = staff_client.post(url, data)

    assert response.status_code == 302
    added = DelayStep.objects.get(journey=welcome_series, name="Wait")
    assert added.key == "wait-2"
    assert added.position == 6  # after "done", at 5, whose form was not on the page


def test_deleting_the_step_moves_its_contacts_to_a_step_whose_form_is_not_on_the_page(
    staff_client, welcome_series
):
    wait = welcome_series.step_map["wait"]
    enrollments = [
        EnrollmentFactory(journey=welcome_series, contact=ContactFactory(), current_step=wait)
        for _ in range(2)
    ]
    url = step_url(welcome_series, wait)
    data = form_data(staff_client.get(url))
    data["steps-0-DELETE"] = "on"

    refused = staff_client.post(url, data)
    data["steps-0-move_contacts_to"] = "nudge"
    response = staff_client.post(url, data)

    assert refused.status_code == 200
    assert "2 contact(s) are on step “wait”" in refused.content.decode()
    assert response.status_code == 302
    assert not Step.objects.filter(pk=wait.pk).exists()
    moved = Enrollment.objects.filter(pk__in=[e.pk for e in enrollments])
    assert {e.current_step_id for e in moved} == {welcome_series.step_map["nudge"].pk}


def test_save_and_continue_stays_on_the_step(staff_client, welcome_series):
    nudge = welcome_series.step_map["nudge"]

    response = post_on_step(
        staff_client,
        welcome_series,
        nudge,
        {"steps-0-name": "Second nudge", "_continue": "Save and continue editing"},
    )

    assert response.status_code == 302
    assert response.url == step_url(welcome_series, nudge)
    assert Step.objects.get(pk=nudge.pk).name == "Second nudge"


def test_a_step_of_another_journey_opens_the_whole_editor_with_a_warning(
    staff_client, welcome_series
):
    other = journey_with_splits(name="Other", blocks=1, templates=[TemplateFactory()])
    step = other.steps.first()

    response = staff_client.get(step_url(welcome_series, step), follow=True)

    body = response.content.decode()
    assert response.redirect_chain == [
        (reverse("admin:journeys_journey_change", args=[welcome_series.pk]), 302)
    ]
    assert "That step is no longer in this journey." in body
    assert form_data(response)["steps-TOTAL_FORMS"] == 5


def queries_and_size(client, url):
    client.get(url)  # the content types, read once per process, are read here
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured), response.context["inline_admin_formsets"]


def test_the_page_of_one_step_costs_the_same_for_a_journey_of_20_or_40_steps(staff_client):
    templates = [TemplateFactory(name=f"Template {n}") for n in range(3)]
    twenty = journey_with_splits(name="Twenty", blocks=2, templates=templates)
    forty = journey_with_splits(name="Forty", blocks=4, templates=templates)

    counts = [
        queries_and_size(staff_client, step_url(journey, journey.steps.order_by("position")[5]))
        for journey in (twenty, forty)
    ]

    assert counts[0][0] == counts[1][0]
    for _, inlines in counts:
        steps = next(inline for inline in inlines if inline.formset.prefix == "steps")
        assert len(steps.formset.forms) == 1
