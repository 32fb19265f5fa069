"""The operations dashboard on the admin's index, in a real browser."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from journeys.models import Enrollment
from journeys.services.scheduling import scheduler_tick
from tests.factories import ContactFactory, EnrollmentFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def nia(db):
    return ContactFactory(email="nia@example.com", attributes={"firstName": "Nia"})


def at_welcome_step(journey, contact, **fields):
    return EnrollmentFactory(
        journey=journey, contact=contact, current_step=journey.step_map["welcome"], **fields
    )


def scheduler_pass(run_worker):
    scheduler_tick()
    run_worker()


def test_the_index_shows_todays_send_after_a_send(
    admin_page, live_server, welcome_series, nia, smtp_server, run_worker
):
    # Given Nia's welcome email, sent by the journey
    at_welcome_step(welcome_series, nia)
    scheduler_pass(run_worker)
    assert [m["To"] for m in smtp_server.messages] == ["nia@example.com"]

    # When a superuser opens the admin
    admin_page.goto(f"{live_server.url}{reverse('admin:index')}")

    # Then today's part of the dashboard counts it, by medium, above the apps
    expect(admin_page.locator("#today-sent td")).to_have_text(["1", "Email 1"])
    expect(admin_page.locator("#today-failed td").first).to_have_text("0")
    expect(admin_page.locator("#scheduler td")).to_have_text("last pass 0 minutes ago")
    dashboard_above_apps = admin_page.locator("#operations-dashboard ~ #content-main")
    expect(dashboard_above_apps).to_contain_text("Journeys")


def test_a_failed_enrollment_is_found_from_the_index_and_retried(
    admin_page, live_server, welcome_series, nia, smtp_server, run_worker
):
    # Given Nia's enrollment, failed on the welcome step
    enrollment = at_welcome_step(
        welcome_series,
        nia,
        state=Enrollment.State.FAILED,
        next_run_at=None,
        last_error="RuntimeError: the template server answered 500",
    )
    admin_page.goto(f"{live_server.url}{reverse('admin:index')}")
    attention = admin_page.locator("#dashboard-attention")
    expect(admin_page.locator("#failed-enrollments td")).to_have_text("Welcome series: 1")

    # When the marketer follows the journey's link, chooses her and retries
    attention.get_by_role("link", name="Welcome series").click()
    row = admin_page.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("RuntimeError: the template server answered 500")
    row.locator("input.action-select").check()
    admin_page.locator("select[name=action]").select_option("retry_failed")
    admin_page.get_by_role("button", name="Go").click()
    expect(admin_page.locator(".messagelist")).to_contain_text(
        "1 contact(s) put back on their failed step"
    )

    # Then the next scheduler pass sends her welcome email, and the index says so
    scheduler_pass(run_worker)
    assert [m["To"] for m in smtp_server.messages] == ["nia@example.com"]
    enrollment.refresh_from_db()
    assert enrollment.state != Enrollment.State.FAILED
    admin_page.goto(f"{live_server.url}{reverse('admin:index')}")
    expect(admin_page.locator("#failed-enrollments td")).to_have_text("none")
    expect(admin_page.locator("#today-sent td")).to_have_text(["1", "Email 1"])
