"""The enrollments list filtered on failed, and on "needs attention": the
failed passages newest first, at a cost that does not grow with them."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from journeys.models import Enrollment, Journey
from tests.admin_pages import result_rows
from tests.factories import ContactFactory, EnrollmentFactory, JourneyFactory, UserFactory

pytestmark = pytest.mark.django_db

ENROLLMENTS = reverse("admin:journeys_enrollment_changelist")


def fail(journey, n):
    return [
        EnrollmentFactory(
            journey=journey,
            contact=ContactFactory(),
            state=Enrollment.State.FAILED,
            last_error="RuntimeError: CRM answered 500",
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("query", ["state__exact=failed", "attention=yes"])
def test_failed_enrollments_newest_first_at_the_same_cost_for_3_or_6(client, query):
    client.force_login(UserFactory(is_superuser=True))
    live = JourneyFactory(name="Live", state=Journey.State.LIVE)
    EnrollmentFactory(journey=live, contact=ContactFactory())  # active: not listed
    url = f"{ENROLLMENTS}?{query}"
    first = fail(live, 3)
    client.get(url)

    with CaptureQueriesContext(connection) as three:
        shown_three = result_rows(client.get(url))
    later = fail(live, 3)
    with CaptureQueriesContext(connection) as six:
        shown_six = result_rows(client.get(url))

    assert len(shown_three) == 3 and len(shown_six) == 6
    newest = [e.pk for e in reversed(first + later)]
    ids = [int(row.split('name="_selected_action" value="')[1].split('"')[0]) for row in shown_six]
    assert ids == newest
    assert len(three) == len(six)
