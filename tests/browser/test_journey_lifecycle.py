"""A journey's life in a real browser: built in one pass, taken live, fed an
event, its diagram's figures moving; drafters kept from going live; copies."""

import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse
from playwright.sync_api import expect

from contacts.services import event_track, events_dispatch_all
from journeys.models import Journey
from journeys.services.scheduling import scheduler_tick
from tests.browser.conftest import PASSWORD
from tests.browser.test_journey_admin import add_step, save
from tests.factories import SendMessageStepFactory, TemplateFactory, UserFactory
from tests.journeys.test_step_types import all_step_types

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = reverse("admin:journeys_journey_changelist")


def run_action(page, journey, label):
    """Tick `journey` on the journey list and run the action labelled `label`."""
    page.locator(f'input[name="_selected_action"][value="{journey.pk}"]').check()
    page.locator('select[name="action"]').first.select_option(label=label)
    page.locator('button[name="index"]').first.click()


def log_in(page, live_server, user):
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/admin/")


def drafters_group():
    """The "Journey drafters" role as migration 0003 makes it (a transactional
    test starts from empty tables): view everything of journeys, add and
    change journeys, add, change and delete steps; never activate."""
    group, _ = Group.objects.get_or_create(name="Journey drafters")
    journeys = Permission.objects.filter(content_type__app_label="journeys")
    step_models = {cls._meta.model_name for cls in all_step_types()} | {"step"}
    group.permissions.set(
        [
            p
            for p in journeys
            if p.codename.startswith("view_")
            or p.codename in ("add_journey", "change_journey")
            or p.codename.split("_", 1)[1] in step_models
        ]
    )
    return group


def test_build_go_live_fire_the_event_and_see_the_diagram_count_it(
    admin_page, live_server, smtp_server, rq_queue, run_worker
):
    page = admin_page
    TemplateFactory(name="Trial started", subject="Your trial has started")
    # Given a journey built on the add page in one pass: trigger, email, exit
    page.goto(f"{live_server.url}{reverse('admin:journeys_journey_add')}")
    page.locator("#id_name").fill("Trial started")
    page.locator("#id_folder").fill("Onboarding/Trials")
    page.locator("#triggers-group .add-row a").click()
    page.locator("#id_triggers-0-event_name").fill("trial_started")
    email = add_step(page, "Send message step")
    expect(email.locator(".step-help")).to_contain_text("Send a template to the contact")
    email.get_by_label("Key").fill("hello")
    email.get_by_label("Template").select_option(label="Trial started")
    add_step(page, "Exit step").get_by_label("Key").fill("done")
    save(page)
    expect(page.locator(".messagelist .success")).to_contain_text("was added successfully")
    journey = Journey.objects.get(name="Trial started")
    hello = journey.steps.get(key="hello")
    # (no position typed: each new step went after the ones before it)
    steps = journey.steps.order_by("position").values_list("key", "position")
    assert list(steps) == [("hello", 1), ("done", 2)]

    # When it goes live from the list
    page.goto(f"{live_server.url}{CHANGELIST}?folder=Onboarding")
    expect(page.locator("#journey-folders")).to_contain_text("Onboarding (1)")
    run_action(page, journey, "Go live with selected journeys")
    expect(page.locator(".messagelist .success")).to_contain_text("1 journey(s) now live")
    journey.refresh_from_db()
    assert journey.state == Journey.State.LIVE
    # and its name on the list opens its diagram
    page.locator("#result_list").get_by_role("link", name="Trial started").click()
    diagram = reverse("admin:journeys_journey_diagram", args=[journey.pk])
    expect(page).to_have_url(re.compile(rf"^{live_server.url}{diagram}(\?.*)?$"))
    expect(page.locator(f"#diagram-step-{hello.pk}")).to_contain_text("sent 0")

    # and the event comes in, and the scheduler and a worker take a pass
    event_track(name="trial_started", email="ann@example.com", data={"plan": "pro"})
    events_dispatch_all()
    scheduler_tick()
    run_worker()

    # Then the email arrives, and the reloaded page counts it
    assert [m["Subject"] for m in smtp_server.messages] == ["Your trial has started"]
    page.reload()
    expect(page.locator(f"#diagram-step-{hello.pk}")).to_contain_text("sent 1")
    # and clicking the step opens the editor on its form
    page.locator(f"#diagram-step-{hello.pk}").click()
    editor = reverse("admin:journeys_journey_change", args=[journey.pk])
    expect(page).to_have_url(f"{live_server.url}{editor}?step={hello.pk}#steps-0")
    expect(page.locator("#steps-0").get_by_label("Key")).to_have_value("hello")
    expect(page.locator("#steps-0")).to_be_in_viewport()
    expect(page.locator("#steps-group .inline-related.has_original")).to_have_count(1)
    # and naming the step there and saving goes back to the diagram, which shows the name
    page.locator("#steps-0").get_by_label("Name").fill("Trial welcome")
    page.locator('input[name="_save"]').first.click()
    expect(page).to_have_url(f"{live_server.url}{diagram}#diagram-step-{hello.pk}")
    expect(page.locator(f"#diagram-step-{hello.pk}")).to_contain_text("Trial welcome")
    page.goto(f"{live_server.url}{CHANGELIST}")
    row = page.locator("#result_list tbody tr", has_text="Trial started")
    expect(row.locator("td.field-messages_sent")).to_have_text("1")
    expect(row.locator("td.field-state")).to_have_text("Live")


def test_a_drafter_is_not_offered_go_live_and_a_forged_post_is_refused(page, live_server):
    drafter = UserFactory(username="dora")
    drafter.groups.add(drafters_group())
    draft = Journey.objects.create(name="Spring sale", state=Journey.State.DRAFT)
    SendMessageStepFactory(journey=draft, key="announce", position=1)
    log_in(page, live_server, drafter)

    page.goto(f"{live_server.url}{CHANGELIST}")
    options = page.locator('select[name="action"]').first.locator("option")
    expect(options).not_to_have_count(0)
    offered = options.evaluate_all("options => options.map(o => o.value)")
    assert "copy" in offered and "go_live" not in offered
    # The page's own form, with the action it does not offer put back in.
    page.evaluate(
        """pk => {
            const form = document.getElementById("changelist-form");
            const select = form.querySelector('select[name="action"]');
            select.add(new Option("Go live", "go_live"));
            select.value = "go_live";
            form.querySelector(`input[name="_selected_action"][value="${pk}"]`).checked = true;
            form.querySelector('button[name="index"]').click();
        }""",
        draft.pk,
    )

    expect(page.locator(".messagelist")).to_contain_text("No action selected")
    draft.refresh_from_db()
    assert draft.state == Journey.State.DRAFT


def test_copying_a_journey_gives_a_draft_with_the_same_steps(
    admin_page, live_server, welcome_series
):
    page = admin_page
    page.goto(f"{live_server.url}{CHANGELIST}")

    run_action(page, welcome_series, "Copy selected journeys (as drafts)")
    expect(page.locator(".messagelist .success")).to_contain_text(
        "Copied “Welcome series” as the draft Welcome series (copy)."
    )
    page.locator(".messagelist .success a").click()

    expect(page.locator("#id_name")).to_have_value("Welcome series (copy)")
    expect(page.locator("#steps-group .inline-related.has_original h3 .inline_label")).to_have_text(
        ["1. welcome", "2. wait", "3. created-project", "4. nudge", "5. done"]
    )
    copy = Journey.objects.get(name="Welcome series (copy)")
    assert copy.state == Journey.State.DRAFT
    assert list(copy.steps.values_list("key", flat=True).order_by("position")) == list(
        welcome_series.steps.values_list("key", flat=True).order_by("position")
    )
