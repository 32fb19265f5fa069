"""Each step type's form says what the step does: the first paragraph of its docstring."""

import html

import pytest
from django.urls import reverse

from journeys.admin.steps import step_type_help
from journeys.models import SendMessageStep, WaitForEventStep
from tests.journeys.test_step_types import all_step_types

pytestmark = pytest.mark.django_db


def test_every_step_types_form_says_what_it_does(admin_client, welcome_series):
    body = admin_client.get(
        reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    ).content.decode()

    for step_type in all_step_types():
        help_text = step_type_help(step_type)
        assert help_text, f"{step_type.__name__} has no docstring to show"
        # On the saved rows of that type and on the blank form "Add another" clones.
        assert f'<p class="help step-help">{html.escape(help_text)}</p>' in body


def test_the_help_is_the_docstrings_first_paragraph_on_one_line():
    assert step_type_help(SendMessageStep) == (
        "Send a template to the contact, on whatever channel its message type is on."
    )
    assert step_type_help(WaitForEventStep) == (
        "Wait until the contact does an event, then go down “event”; if it does not come "
        "in time, go down “timeout”."
    )
