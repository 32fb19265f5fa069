"""A journey's analytics page: what it shows for a journey with activity,
the date range, and its cost, which does not grow with days or steps."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from journeys.models import Enrollment, HoldoutStep, RandomSplitStep, StepRun
from journeys.selectors import Lift, journey_analytics
from journeys.services.runner import HOLDOUT_EXIT_REASON
from messaging.models import Message
from tests.factories import (
    ContactFactory,
    DelayStepFactory,
    EnrollmentFactory,
    JourneyFactory,
    MessageFactory,
    SendMessageStepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
YESTERDAY = TODAY - timedelta(days=1)


def page_url(journey):
    return reverse("admin:journeys_journey_analytics", args=[journey.pk])


CELL = r"<t[hd][^>]*>(.*?)</t[hd]>"


def table(body, table_id):
    """The rows of the table with this id (or inside the element with it), as cell texts."""
    found = re.search(rf'id="{table_id}".*?<tbody>(.*?)</tbody>', body, re.S)
    assert found, f"no table {table_id}"
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(CELL, row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)
    ]


def run(enrollment, step, outcome="continued", branch="", at=TODAY):
    StepRun.objects.create(enrollment=enrollment, step=step, sequence=0, outcome=outcome,
                           branch=branch, started_at=at, finished_at=at)  # fmt: skip


@pytest.fixture
def promo():
    """A journey with a holdout, an A/B split and a send step, and ten contacts through it:
    two held out (one converts), five down branch a (two convert), two down b (one
    converts), one who left on an exit event; messages sent over two days."""
    journey = JourneyFactory(name="Promo", goal_event_name="purchase")
    control = HoldoutStep.objects.create(journey=journey, key="control", position=1, percent=20)
    ab = RandomSplitStep.objects.create(journey=journey, key="ab", position=2, weights="1,1")
    hello = SendMessageStepFactory(journey=journey, key="hello", position=3)
    passages = [
        EnrollmentFactory(journey=journey, contact=ContactFactory(), entered_at=TODAY)
        for _ in range(10)
    ]
    held, a, b, left = passages[:2], passages[2:7], passages[7:9], passages[9:]
    for enrollment in held:
        run(enrollment, control, outcome="exited")
    for enrollment in a + b + left:
        run(enrollment, control, branch="treatment")
    for enrollment in a + b:
        run(enrollment, ab, branch="a" if enrollment in a else "b")
        run(enrollment, hello)
    Enrollment.objects.filter(pk__in=[e.pk for e in held]).update(
        state="exited", holdout=True, exit_reason=HOLDOUT_EXIT_REASON, exit_kind="holdout",
        finished_at=TODAY,
    )  # fmt: skip
    Enrollment.objects.filter(pk__in=[e.pk for e in a + b]).update(
        state="completed", finished_at=TODAY
    )
    Enrollment.objects.filter(pk=left[0].pk).update(
        state="exited", exit_reason="exit event: cancelled", exit_kind="exit_event",
        finished_at=TODAY,
    )  # fmt: skip
    converted = [held[0], a[0], a[1], b[0]]
    Enrollment.objects.filter(pk__in=[e.pk for e in converted]).update(goal_reached_at=TODAY)
    for n, enrollment in enumerate(a + b):
        at = YESTERDAY if n < 2 else TODAY
        MessageFactory(
            contact=enrollment.contact, template=hello.template, origin=Message.Origin.JOURNEY,
            origin_id=enrollment.pk, origin_step_id=hello.pk, sent_at=at,
            delivered_at=at if n < 6 else None, opened_at=at if n in (2, 3) else None,
            clicked_at=at if n == 2 else None,
        )  # fmt: skip
    return journey


def test_the_page_shows_the_journeys_figures_chart_funnel_and_splits(staff_client, promo):
    response = staff_client.get(
        page_url(promo), {"since": f"{YESTERDAY:%Y-%m-%d}", "until": f"{TODAY:%Y-%m-%d}"}
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert table(body, "analytics-summary") == [
        ["Entered", "10"],
        ["Completed", "7"],
        ["Exited", "3"],
        ["\N{EN DASH} Exit event", "1"],
        ["\N{EN DASH} Held out (control group)", "2"],
        ["Failed", "0"],
        ["Conversions", "3"],
        ["Conversion rate (of those entered, outside the holdout)", "37.5%"],
    ]
    assert table(body, "analytics-holdout") == [
        ["Treatment (went on)", "8", "3", "37.5%"],
        ["Control (held out)", "2", "1", "50.0%"],
    ]
    assert "Not enough data for a confidence yet" in body
    chart = re.search(r'<svg[^>]*class="analytics-chart".*?</svg>', body, re.S).group(0)
    assert len(re.findall(r'<polyline class="series series-(\w+)"', chart)) == 4
    assert table(body, "messages-per-day") == [
        [f"{YESTERDAY:%Y-%m-%d}", "2", "2", "0", "0"],
        [f"{TODAY:%Y-%m-%d}", "5", "4", "2", "1"],
    ]
    funnel = table(body, "analytics-funnel")
    assert [(row[0].split()[-1], row[2]) for row in funnel] == [
        ("control", "10"),
        ("ab", "7"),
        ("hello", "7"),
    ]
    splits = re.findall(r'data-step="(\w+)".*?<tbody>(.*?)</tbody>', body, re.S)
    assert [key for key, _ in splits] == ["control", "ab"]
    assert table(body, 'analytics-splits">.*?data-step="ab') == [
        ["a", "5", "2", "40.0%"],
        ["b", "2", "1", "50.0%"],
    ]


def test_the_journey_list_and_the_journeys_page_link_to_it(staff_client, promo):
    url = page_url(promo)

    listing = staff_client.get(reverse("admin:journeys_journey_changelist")).content.decode()
    page = staff_client.get(reverse("admin:journeys_journey_change", args=[promo.pk]))

    assert f'href="{url}"' in listing
    assert f'href="{url}"' in page.content.decode()


def test_a_period_with_no_activity_says_so(staff_client, promo):
    response = staff_client.get(page_url(promo), {"since": "2020-01-01", "until": "2020-01-31"})

    body = response.content.decode()
    assert "No activity between 2020-01-01 and 2020-01-31." in body
    assert 'class="analytics-chart"' not in body and "messages-per-day" not in body


@pytest.mark.parametrize(
    "period, error",
    [
        ({"since": "2026-03-10", "until": "2026-03-01"},
         "The period starts (2026-03-10) after it ends (2026-03-01)"),
        ({"since": "tomorrow"}, "From: Enter a valid date."),
        ({"since": "2020-01-01", "until": "2022-01-01"},
         "Choose at most 366 days; this period has 732."),
    ],
)  # fmt: skip
def test_a_bad_period_is_refused_with_a_clear_error(staff_client, promo, period, error):
    response = staff_client.get(page_url(promo), period)

    assert response.status_code == 200
    body = response.content.decode()
    assert error in body
    assert "analytics-summary" not in body


def test_the_page_needs_the_view_journey_permission(promo):
    user = UserFactory(is_superuser=False)
    client = Client()
    client.force_login(user)
    assert client.get(page_url(promo)).status_code == 403

    user.user_permissions.add(Permission.objects.get(codename="view_journey"))
    client = Client()
    client.force_login(user)
    assert client.get(page_url(promo)).status_code == 200


def test_the_page_costs_the_same_queries_for_10_or_20_days_and_5_or_10_steps(staff_client):
    def queries_for(days, steps):
        journey = JourneyFactory(name=f"{days} days")
        step_list = [
            DelayStepFactory(journey=journey, key=f"d{i}", position=i) for i in range(steps)
        ]
        for day in range(days):
            at = TODAY - timedelta(days=day)
            enrollment = EnrollmentFactory(journey=journey, entered_at=at)
            for step in step_list:
                run(enrollment, step, at=at)
        since = (TODAY - timedelta(days=days - 1)).date()
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get(page_url(journey), {"since": since, "until": TODAY.date()})
        assert len(table(response.content.decode(), "messages-per-day")) == days
        return len(captured)

    assert queries_for(10, 5) == queries_for(20, 10)


def test_journey_analytics_reads_three_queries_whatever_the_days_and_steps(
    django_assert_num_queries, promo
):
    journey_analytics(journey=promo, since=TODAY.date(), until=TODAY.date())  # content types cached
    with django_assert_num_queries(3):
        journey_analytics(
            journey=promo, since=(TODAY - timedelta(days=300)).date(), until=TODAY.date()
        )


def test_the_lifts_confidence_is_a_two_proportion_z_test():
    # 1,000 treated converting at 12 %, 1,000 held out at 10 %: z ≈ 1.43
    lift = Lift(treatment=1000, treatment_converted=120, control=1000, control_converted=100)

    assert lift.lift == pytest.approx(0.2)
    assert lift.z == pytest.approx(1.4289, abs=1e-3)
    assert lift.confidence == pytest.approx(0.8469, abs=1e-3)
    assert Lift(treatment=40, treatment_converted=4, control=10, control_converted=1).z is None
