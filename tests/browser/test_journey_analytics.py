"""A journey's analytics page in a real browser: reached from the journey
list, with the messages chart and the funnel of a journey with activity."""

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from journeys.services.scheduling import scheduler_tick
from tests.factories import ContactFactory, EnrollmentFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_analytics_of_a_journey_with_activity_show_its_chart_and_funnel(
    admin_page, live_server, welcome_series, smtp_server, run_worker
):
    # Given two contacts sent the welcome email by the journey's engine
    for email in ("nia@example.com", "ola@example.com"):
        EnrollmentFactory(
            journey=welcome_series,
            contact=ContactFactory(email=email),
            current_step=welcome_series.step_map["welcome"],
        )
    scheduler_tick()
    run_worker()
    assert len(smtp_server.messages) == 2

    # When staff open its analytics from the journey list
    admin_page.goto(f"{live_server.url}{reverse('admin:journeys_journey_changelist')}")
    admin_page.get_by_role("row", name="Welcome series").get_by_role(
        "link", name="Analytics"
    ).click()

    # Then the chart draws the messages per day, its table says 2 sent today,
    # and the funnel has both contacts at the welcome and wait steps
    expect(admin_page.locator("h1")).to_have_text("Analytics of “Welcome series”")
    chart = admin_page.locator("svg.analytics-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("polyline")).to_have_count(4)
    today = admin_page.locator("#messages-per-day tbody tr").last.locator("td")
    expect(today).to_have_text([f"{timezone.now():%Y-%m-%d}", "2", "0", "0", "0"])
    funnel = admin_page.locator("#analytics-funnel tbody tr")
    expect(funnel.filter(has_text="welcome").locator("td").nth(2)).to_have_text("2")
    expect(funnel.filter(has_text="wait").locator("td").nth(2)).to_have_text("2")
    expect(funnel.filter(has_text="nudge").locator("td").nth(2)).to_have_text("0")
