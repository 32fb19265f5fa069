"""A yes/no condition step shows only the fields of its kind."""

import pytest
from playwright.sync_api import expect

from journeys.models import ConditionStep
from tests.browser.test_journey_admin import add_step, open_journey, save

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT = "/tmp/condition-step.png"


def expect_kind_fields(row, kind):
    fields = {
        "condition": [row.get_by_label("Condition")],
        "attribute": [row.get_by_label(label) for label in ("Attribute", "Operator", "Value")],
        "event_since_entry": [row.get_by_label("Event name")],
    }
    for fields_kind, kind_fields in fields.items():
        for field in kind_fields:
            (expect(field).to_be_visible if fields_kind == kind else expect(field).to_be_hidden)()


def test_a_saved_condition_shows_the_fields_of_its_kind(admin_page, live_server, welcome_series):
    open_journey(admin_page, live_server, welcome_series)

    row = admin_page.locator("#steps-group .inline-conditionstep.has_original")
    expect(row.get_by_label("Kind")).to_have_value("event_since_entry")
    expect_kind_fields(row, "event_since_entry")

    row.get_by_label("Kind").select_option("attribute")
    expect_kind_fields(row, "attribute")

    row.get_by_label("Kind").select_option("condition")
    expect_kind_fields(row, "condition")

    row.get_by_label("Kind").select_option("event_since_entry")
    expect_kind_fields(row, "event_since_entry")
    expect(row.get_by_label("Event name")).to_have_value("project_created")


def test_adding_a_condition_in_the_segment_language(admin_page, live_server, welcome_series):
    open_journey(admin_page, live_server, welcome_series)

    row = add_step(admin_page, "Yes/no condition step")
    row.get_by_label("Kind").select_option("condition")
    expect_kind_fields(row, "condition")
    row.get_by_label("Position").fill("6")
    row.get_by_label("Key").fill("recent-buyer")
    row.get_by_label("Condition").fill('{"event": "purchase", "op": "done", "within_days": 30}')
    save(admin_page)

    expect(admin_page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    step = ConditionStep.objects.get(journey=welcome_series, key="recent-buyer")
    assert (step.kind, step.condition) == (
        ConditionStep.Kind.CONDITION,
        {"event": "purchase", "op": "done", "within_days": 30},
    )


def test_adding_an_attribute_condition(admin_page, live_server, welcome_series):
    open_journey(admin_page, live_server, welcome_series)

    row = add_step(admin_page, "Yes/no condition step")
    expect_kind_fields(row, "attribute")  # the default kind
    row.get_by_label("Kind").select_option("event_since_entry")
    expect_kind_fields(row, "event_since_entry")
    row.get_by_label("Kind").select_option("attribute")
    expect_kind_fields(row, "attribute")
    row.get_by_label("Position").fill("6")
    row.get_by_label("Key").fill("is-pro")
    row.get_by_label("Attribute").fill("plan")
    row.get_by_label("Operator").select_option(label="equals")
    row.get_by_label("Value").fill("pro")
    admin_page.locator("#steps-group").screenshot(path=SCREENSHOT)
    save(admin_page)

    expect(admin_page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    step = ConditionStep.objects.get(journey=welcome_series, key="is-pro")
    assert (step.position, step.kind, step.attribute, step.operator, step.value) == (
        6,
        ConditionStep.Kind.ATTRIBUTE,
        "plan",
        "eq",
        "pro",
    )


def test_a_refused_condition_comes_back_showing_its_kind(admin_page, live_server, welcome_series):
    open_journey(admin_page, live_server, welcome_series)

    row = add_step(admin_page, "Yes/no condition step")
    row.get_by_label("Position").fill("6")
    row.get_by_label("Key").fill("upgraded")
    row.get_by_label("Kind").select_option("event_since_entry")
    save(admin_page)

    expect(admin_page.locator(".errornote")).to_be_visible()
    row = admin_page.locator("#steps-group .inline-related").filter(
        has=admin_page.locator("#id_steps-5-key")
    )
    expect(row.locator(".errorlist")).to_contain_text("Name the event to look for.")
    expect_kind_fields(row, "event_since_entry")
    assert not ConditionStep.objects.filter(key="upgraded").exists()


def test_the_add_link_reads_add_another_step(admin_page, live_server, welcome_series):
    open_journey(admin_page, live_server, welcome_series)

    expect(admin_page.locator("#steps-group .polymorphic-add-choice > a")).to_have_text(
        "Add another step"
    )
