"""The editor renders a step's fields through a Jinja2 copy of the admin's
fieldset template (journeys.templatetags.step_forms): it must give the markup
the admin's own template gives, for every step type, with errors, and read-only."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.template.loader import render_to_string
from django.urls import reverse

from journeys.models import (
    HoldoutStep,
    Journey,
    NotifyStaffStep,
    StartJourneyStep,
    WebhookStep,
)
from journeys.templatetags.step_forms import step_fieldsets
from tests.admin_pages import form_data
from tests.factories import JourneyFactory, TemplateFactory, UserFactory
from tests.journeys.branching import journey_with_splits

pytestmark = pytest.mark.django_db


@pytest.fixture
def journey():
    """A journey with a step of every type."""
    journey = journey_with_splits(name="Every type", blocks=1, templates=[TemplateFactory()])
    last = journey.steps.order_by("-position").first().position
    for offset, step in enumerate(
        [
            HoldoutStep(key="holdout", percent=10),
            StartJourneyStep(key="start", target=JourneyFactory(name="Next")),
            WebhookStep(key="hook", url="https://hooks.example.com/in", headers={"X-A": "b"}),
            NotifyStaffStep(key="tell", recipients="sales@example.com", subject="New <lead>"),
        ],
        start=1,
    ):
        step.journey, step.position = journey, last + offset
        step.save()
    return journey


def normalized(html):
    """Markup with whitespace between tags and runs of spaces dropped, and
    the one escape the two languages write differently (') made the same."""
    html = html.replace("&#x27;", "&#39;")
    return re.sub(r"\s+", " ", re.sub(r">\s+<", "><", html)).strip()


def both_ways(response):
    """(Django template, Jinja2) markup of each step form's fields on the page."""
    (steps,) = [
        inline for inline in response.context["inline_admin_formsets"]
        if inline.formset.prefix == "steps"
    ]  # fmt: skip
    pairs = []
    for index, inline_admin_form in enumerate(steps):
        django = "".join(
            render_to_string(
                "admin/includes/fieldset.html",
                {
                    "fieldset": fieldset,
                    "prefix": "steps",
                    "id_prefix": index,
                    "id_suffix": n,
                    "heading_level": 4,
                },
            )
            for n, fieldset in enumerate(inline_admin_form)
        )
        jinja2 = step_fieldsets(inline_admin_form, prefix="steps", id_prefix=index)
        pairs.append((django, jinja2))
    return pairs


def assert_same_markup(response):
    pairs = both_ways(response)
    assert pairs
    for django, jinja2 in pairs:
        assert normalized(jinja2) == normalized(django)
    return pairs


def test_every_step_types_fields_render_as_the_admins_template_renders_them(admin_client, journey):
    response = admin_client.get(reverse("admin:journeys_journey_change", args=[journey.pk]))

    pairs = assert_same_markup(response)
    # 14 saved steps of 12 types, and an empty form per type for "Add another"
    assert len(pairs) == 14 + 12
    body = response.content.decode()
    assert 'name="steps-0-template"' in body and "New &lt;lead&gt;" in body


def test_fields_with_errors_render_as_the_admins_template_renders_them(admin_client, journey):
    url = reverse("admin:journeys_journey_change", args=[journey.pk])
    data = form_data(admin_client.get(url))
    keys = {value: name for name, value in data.items() if name.endswith("-key")}
    delay = keys["b0-1"].removesuffix("-key")
    data[f"{delay}-amount"] = "soon"  # on a line with its unit
    data[keys["hook"]] = "b0-1"  # a key another step uses, alone on its line

    response = admin_client.post(url, data)

    assert response.status_code == 200
    pairs = assert_same_markup(response)
    errors = [jinja2 for _, jinja2 in pairs if "errorlist" in jinja2]
    assert len(errors) == 2
    assert any("Enter a whole number." in markup for markup in errors)
    assert any("already uses the key “b0-1”" in markup for markup in errors)


def test_read_only_fields_render_as_the_admins_template_renders_them(client, journey):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_journey", "view_step"])
    )
    client.force_login(viewer)
    Journey.objects.filter(pk=journey.pk).update(description="Seen, not changed")

    response = client.get(reverse("admin:journeys_journey_change", args=[journey.pk]))

    pairs = assert_same_markup(response)
    assert all('<div class="readonly">' in jinja2 for _, jinja2 in pairs)
    assert "<input" not in "".join(jinja2 for _, jinja2 in pairs)
