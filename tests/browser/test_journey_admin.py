"""A marketer building journeys in the admin, in a real browser."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from journeys.models import ConditionStep, DelayStep, ExitStep, Journey, SendMessageStep, Step
from tests.factories import TemplateFactory

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT = "/tmp/journey-admin.png"


def open_journey(page, live_server, journey=None):
    if journey is None:
        url = reverse("admin:journeys_journey_add")
    else:
        url = reverse("admin:journeys_journey_change", args=[journey.pk])
    page.goto(f"{live_server.url}{url}")


def add_step(page, step_type):
    """Add a step through polymorphic's "Add another step" menu; return its new row."""
    index = int(page.locator("#id_steps-TOTAL_FORMS").input_value())
    page.locator("#steps-group .polymorphic-add-choice > a").click()
    page.locator(".polymorphic-type-menu").get_by_role("link", name=step_type).click()
    row = page.locator(f"#steps-{index}")
    expect(row).to_be_visible()
    return row


def save(page):
    page.get_by_role("button", name="Save", exact=True).first.click()


def test_change_page_shows_the_steps_in_position_order(admin_page, live_server, welcome_series):
    open_journey(admin_page, live_server, welcome_series)

    saved_rows = admin_page.locator("#steps-group .inline-related.has_original")
    expect(saved_rows.locator("h3 b")).to_have_text(
        [
            "Send message step:",
            "Delay step:",
            "Yes/no condition step:",
            "Send message step:",
            "Exit step:",
        ]
    )
    expect(saved_rows.locator("h3 .inline_label")).to_have_text(
        ["1. welcome", "2. wait", "3. created-project", "4. nudge", "5. done"]
    )
    admin_page.screenshot(path=SCREENSHOT, full_page=True)


def test_adding_a_delay_step_through_the_type_menu(admin_page, live_server, welcome_series):
    open_journey(admin_page, live_server, welcome_series)

    row = add_step(admin_page, "Delay step")
    row.get_by_label("Position").fill("6")
    row.get_by_label("Key").fill("wait-again")
    row.get_by_label("Amount").fill("3")
    row.get_by_label("Unit").select_option("hours")
    save(admin_page)

    expect(admin_page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    step = Step.objects.get(journey=welcome_series, key="wait-again")
    assert isinstance(step, DelayStep)
    assert (step.position, step.amount, step.unit) == (6, 3, DelayStep.Unit.HOURS)
    assert welcome_series.steps.count() == 6


def test_a_step_added_on_the_page_of_one_step_joins_the_journey_after_every_step(
    admin_page, live_server, welcome_series
):
    # Given the editor opened on one step, as the diagram opens it
    condition = welcome_series.step_map["condition"]
    url = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    admin_page.goto(f"{live_server.url}{url}?step={condition.pk}#steps-0")
    expect(admin_page.locator("#steps-group .inline-related.has_original")).to_have_count(1)

    # When a delay is added there, with no position, pointed at from the condition
    row = add_step(admin_page, "Delay step")
    row.get_by_label("Key").fill("cool-off")
    row.get_by_label("Amount").fill("1")
    admin_page.locator("#steps-0").get_by_label("Go to (no)").fill("cool-off")
    save(admin_page)

    # Then it goes after every step, and the condition leads to it
    expect(admin_page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    added = DelayStep.objects.get(journey=welcome_series, key="cool-off")
    assert added.position == 6
    assert condition.connections.get(label="no").target_id == added.pk
    assert welcome_series.steps.count() == 6


def test_creating_a_journey_with_an_email_and_an_exit(admin_page, live_server):
    TemplateFactory(name="Trial ending")
    open_journey(admin_page, live_server)

    admin_page.locator("#id_name").fill("Trial ending")
    admin_page.locator("#triggers-group .add-row a").click()
    admin_page.locator("#id_triggers-0-event_name").fill("trial_ending")
    email = add_step(admin_page, "Send message step")
    email.get_by_label("Position").fill("1")
    email.get_by_label("Key").fill("reminder")
    email.get_by_label("Template").select_option(label="Trial ending")
    goodbye = add_step(admin_page, "Exit step")
    goodbye.get_by_label("Position").fill("2")
    goodbye.get_by_label("Key").fill("done")
    save(admin_page)

    expect(admin_page.locator(".messagelist .success")).to_contain_text("was added successfully")
    journey = Journey.objects.get(name="Trial ending")
    assert [(t.kind, t.event_name) for t in journey.triggers.all()] == [("event", "trial_ending")]
    steps = list(journey.steps.order_by("position"))
    assert [(type(step), step.key) for step in steps] == [
        (SendMessageStep, "reminder"),
        (ExitStep, "done"),
    ]
    assert steps[0].template.name == "Trial ending"


def test_an_attribute_condition_without_attribute_is_refused(
    admin_page, live_server, welcome_series
):
    open_journey(admin_page, live_server, welcome_series)

    admin_page.locator("#id_name").fill("Welcome series v2")
    row = add_step(admin_page, "Yes/no condition step")
    row.get_by_label("Position").fill("6")
    row.get_by_label("Key").fill("is-pro")
    row.get_by_label("Kind").select_option("attribute")
    save(admin_page)

    expect(admin_page.locator(".errornote")).to_be_visible()
    expect(admin_page.locator("#steps-group .errorlist")).to_contain_text(
        "is not an attribute path"
    )
    expect(admin_page.locator("#id_steps-5-key")).to_have_value("is-pro")
    assert not Step.objects.filter(key="is-pro").exists()
    assert ConditionStep.objects.filter(journey=welcome_series).count() == 1
    welcome_series.refresh_from_db()
    assert welcome_series.name == "Welcome series"
