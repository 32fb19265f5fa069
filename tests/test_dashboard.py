"""The operations dashboard on the admin's index: today's sends, what needs a
person, and the engine's liveness; each part for the staff allowed to see it."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rq import Worker

from contacts.models import Event
from contacts.redis import redis_client
from journeys.models import Enrollment, Journey
from journeys.services.scheduling import scheduler_tick
from messaging.models import Message
from messaging.selectors import messages_needing_attention
from tests.factories import (
    ContactFactory,
    EnrollmentFactory,
    EventFactory,
    JourneyFactory,
    MessageFactory,
    UserFactory,
    medium_message,
    medium_template,
)

pytestmark = pytest.mark.django_db

INDEX = reverse("admin:index")
Status = Message.Status


def signed_in(*codenames, superuser=False):
    user = UserFactory(is_superuser=superuser)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def superuser_client():
    return signed_in(superuser=True)


def section(response, element_id):
    """The text of one part of the dashboard, tags taken out, spaces squeezed."""
    assert response.status_code == 200
    body = response.content.decode()
    match = re.search(rf'<div class="module" id="{element_id}">(.*?)</table>', body, re.S)
    assert match, f"no #{element_id} on the page"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def created_days_ago(message, days):
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(days=days))
    return message


def fail_enrollments(journey, count):
    for _ in range(count):
        EnrollmentFactory(
            journey=journey, state=Enrollment.State.FAILED, next_run_at=None, last_error="boom"
        )


# --- Today --------------------------------------------------------------------


def test_today_shows_sends_by_medium_skips_by_reason_failures_bounces_and_complaints():
    # Given today's messages on two media, skips, a failure, a bounce and a complaint
    email, sms = medium_template("email"), medium_template("sms")
    for _ in range(3):
        medium_message(email, status=Status.SENT, sent_at=timezone.now())
    medium_message(email, status=Status.SENT, sent_at=timezone.now(), bounced_at=timezone.now())
    medium_message(email, status=Status.SENT, sent_at=timezone.now(), complained_at=timezone.now())
    medium_message(sms, status=Status.SENT, sent_at=timezone.now())
    medium_message(email, status=Status.SKIPPED, skip_reason="blocklisted")
    medium_message(email, status=Status.SKIPPED, skip_reason="daily_cap")
    medium_message(email, status=Status.SKIPPED, skip_reason="daily_cap")
    medium_message(email, status=Status.FAILED, error="550 No such user")
    medium_message(email, status=Status.QUEUED)
    # and, not today's: yesterday's sends and a test send
    created_days_ago(medium_message(email, status=Status.SENT), days=1)
    created_days_ago(medium_message(sms, status=Status.FAILED), days=2)
    medium_message(email, status=Status.SENT, is_test=True)

    # When a superuser opens the admin
    today = section(superuser_client().get(INDEX), "dashboard-today")

    # Then the dashboard counts today's only
    assert "Sent 6 Email 5 · SMS 1" in today
    assert "Skipped 3 Daily limit per channel reached 2 · Contact is blocklisted 1" in today
    assert "Bounced 1" in today
    assert "Complaints 1" in today
    assert "Failed 1" in today
    assert "Waiting to send 1" in today


def test_the_index_reads_as_many_queries_for_10_journeys_and_messages_as_for_5():
    client = superuser_client()
    client.get(INDEX)  # the session and the user's permissions, read once

    def queries_with(n):
        template = medium_template("email")
        for _ in range(n):
            medium_message(template, status=Status.SENT, sent_at=timezone.now())
            medium_message(template, status=Status.FAILED, error="boom")
            fail_enrollments(JourneyFactory(), 2)
            EventFactory()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(INDEX)
        assert response.status_code == 200
        return len(captured)

    assert queries_with(5) == queries_with(5)  # now 10 of each


# --- Needs attention -----------------------------------------------------------


def test_failed_enrollments_are_counted_per_journey_and_link_to_their_list():
    # Given failed enrollments in two journeys, one archived journey, and a fine one
    onboarding = JourneyFactory(name="Onboarding")
    winback = JourneyFactory(name="Win-back", state=Journey.State.PAUSED)
    archived = JourneyFactory(name="Old promo", state=Journey.State.ARCHIVED)
    fail_enrollments(onboarding, 3)
    fail_enrollments(winback, 1)
    fail_enrollments(archived, 2)
    EnrollmentFactory(journey=onboarding)
    client = superuser_client()

    # When a superuser opens the admin
    response = client.get(INDEX)

    # Then each journey with failures shows its count, most first; archived ones not
    attention = section(response, "dashboard-attention")
    assert "Failed enrollments Onboarding : 3 Win-back : 1" in attention
    assert "Old promo" not in attention
    # and the journey's link lists its failed enrollments
    url = re.search(r'<a href="([^"]+)">Onboarding</a>', response.content.decode()).group(1)
    listed = client.get(url.replace("&amp;", "&"))
    assert listed.status_code == 200
    assert {e.pk for e in listed.context["cl"].result_list} == set(
        onboarding.enrollments.filter(state="failed").values_list("pk", flat=True)
    )


def test_the_needs_attention_link_lists_failed_enrollments_that_can_be_retried():
    live = JourneyFactory()
    fail_enrollments(live, 2)
    fail_enrollments(JourneyFactory(state=Journey.State.ARCHIVED), 1)
    EnrollmentFactory(journey=live)
    client = superuser_client()
    url = re.search(
        r'<a href="([^"]+)">Failed enrollments</a>', client.get(INDEX).content.decode()
    ).group(1)

    listed = client.get(url.replace("&amp;", "&"))

    assert {e.pk for e in listed.context["cl"].result_list} == set(
        live.enrollments.filter(state="failed").values_list("pk", flat=True)
    )


def test_failed_and_interrupted_messages_are_counted_and_listed_with_their_error(settings):
    settings.WAYMARK_ENGINE = {**settings.WAYMARK_ENGINE, "LEASE": timedelta(minutes=5)}
    # Given recent failed and interrupted messages, and others that need no one
    failed = MessageFactory(status=Status.FAILED, error="550 No such user\nmore detail")
    interrupted = MessageFactory(status=Status.FAILED, error=Message.INTERRUPTED_ERROR)
    orphaned = MessageFactory(status=Status.SENDING)
    Message.objects.filter(pk=orphaned.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    MessageFactory(status=Status.SENDING)  # a worker may be on it
    MessageFactory(status=Status.SENT)
    MessageFactory(status=Status.FAILED, is_test=True)
    created_days_ago(MessageFactory(status=Status.FAILED, error="old"), days=8)
    client = superuser_client()

    # When a superuser opens the admin
    response = client.get(INDEX)

    # Then the three are counted, and the link lists them with their error
    assert "Failed or interrupted messages 3 in the last 7 days" in section(
        response, "dashboard-attention"
    )
    url = re.search(
        r'<a href="([^"]+)">Failed or interrupted messages</a>', response.content.decode()
    ).group(1)
    listed = client.get(url.replace("&amp;", "&"))
    assert {m.pk for m in listed.context["cl"].result_list} == {
        failed.pk,
        interrupted.pk,
        orphaned.pk,
    }
    page = listed.content.decode()
    assert "550 No such user" in page
    assert "more detail" not in page  # the first line only; the message's page has the rest


def test_counts_of_messages_needing_attention_stop_at_the_cap():
    for _ in range(5):
        MessageFactory(status=Status.FAILED, error="boom")

    assert messages_needing_attention(cap=3) == 3
    assert messages_needing_attention(cap=10) == 5


def test_overdue_enrollments_of_live_journeys_and_waiting_events_show_their_age():
    # Given an enrollment of a live journey due 20 minutes ago, one of a paused
    # journey due longer ago, and an event received 10 minutes ago not yet dispatched
    now = timezone.now()
    EnrollmentFactory(next_run_at=now - timedelta(minutes=20))
    EnrollmentFactory(
        journey=JourneyFactory(state=Journey.State.PAUSED), next_run_at=now - timedelta(days=3)
    )
    EventFactory(dispatched=True)
    event = EventFactory()
    Event.objects.filter(pk=event.pk).update(received_at=now - timedelta(minutes=10))

    attention = section(superuser_client().get(INDEX), "dashboard-attention")

    assert "Enrollments overdue the oldest was due 20 minutes ago" in attention
    assert "Events waiting for journeys the oldest came 10 minutes ago" in attention


def test_nothing_overdue_and_nothing_waiting_says_none():
    EnrollmentFactory(next_run_at=timezone.now() + timedelta(hours=1))
    EventFactory(dispatched=True)

    attention = section(superuser_client().get(INDEX), "dashboard-attention")

    assert "Enrollments overdue none" in attention
    assert "Events waiting for journeys none" in attention


# --- Liveness and rq ----------------------------------------------------------


def test_the_scheduler_pass_is_recorded_and_shown(rq_queue):
    client = superuser_client()
    assert "no pass recorded: is the scheduler running?" in section(
        client.get(INDEX), "dashboard-attention"
    )

    scheduler_tick()

    assert "Scheduler last pass 0 minutes ago" in section(client.get(INDEX), "dashboard-attention")


@pytest.mark.django_db(transaction=True)  # jobs are enqueued when the transaction commits
def test_failed_jobs_and_live_workers_are_shown_with_links_to_rq(rq_queue, run_worker):
    # Given a job that failed, and a worker alive (registered, heartbeat fresh)
    rq_queue.enqueue("builtins.int", "not a number")
    run_worker()
    worker = Worker([rq_queue], connection=redis_client(), name="worker-one")
    worker.register_birth()
    try:
        response = superuser_client().get(INDEX)
    finally:
        worker.register_death()

    attention = section(response, "dashboard-attention")
    assert "Workers 1 alive: worker-one" in attention
    assert "Queue “default” 0 waiting · 1 failed job" in attention
    body = response.content.decode()
    assert f'href="{reverse("admin:django_rq_failed_jobs", args=[0])}"' in body
    assert f'href="{reverse("admin:django_rq_dashboard_changelist")}"' in body


def test_no_worker_alive_is_flagged(rq_queue):
    attention = section(superuser_client().get(INDEX), "dashboard-attention")

    assert "Workers 0 alive: is any worker running?" in attention


# --- Who sees what ---------------------------------------------------------------


def test_staff_see_only_the_parts_they_may_view():
    MessageFactory(status=Status.FAILED, error="boom")
    fail_enrollments(JourneyFactory(name="Onboarding"), 1)

    messages_only = signed_in("view_message").get(INDEX).content.decode()
    nothing = signed_in().get(INDEX).content.decode()

    assert 'id="dashboard-today"' in messages_only
    assert "Failed or interrupted messages" in messages_only
    assert "Onboarding" not in messages_only
    assert "Queue “default”" not in messages_only
    assert 'id="operations-dashboard"' not in nothing


# --- rq's pages in the admin -------------------------------------------------------


RQ_PAGES = [
    reverse("admin:django_rq_dashboard_changelist"),
    reverse("admin:django_rq_jobs", args=[0]),
    reverse("admin:django_rq_failed_jobs", args=[0]),
    reverse("admin:django_rq_workers", args=[0]),
    reverse("admin:django_rq_home_json"),
]


@pytest.mark.parametrize("url", RQ_PAGES)
def test_rq_pages_are_open_to_superusers_and_staff_with_the_permission(url, rq_queue):
    assert superuser_client().get(url).status_code == 200
    assert signed_in("admin").get(url).status_code == 200


@pytest.mark.parametrize("url", RQ_PAGES)
def test_rq_pages_are_closed_to_other_staff_and_to_visitors(url, rq_queue):
    assert signed_in("view_message").get(url).status_code == 403
    anonymous = Client().get(url)
    if url == reverse("admin:django_rq_home_json"):
        assert anonymous.status_code == 401  # no API token configured
    else:
        assert anonymous.status_code == 302
        assert anonymous["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db(transaction=True)  # jobs are enqueued when the transaction commits
def test_staff_without_the_permission_cannot_empty_a_queue(rq_queue):
    rq_queue.enqueue("builtins.int", "1")

    response = signed_in("view_message").post(reverse("admin:django_rq_clear", args=[0]))

    assert response.status_code == 403
    assert rq_queue.count == 1


def test_the_queues_link_is_in_the_admins_top_links_for_those_who_may_open_them(rq_queue):
    queues = reverse("admin:django_rq_dashboard_changelist")
    link = f'<a href="{queues}" id="queues-link">Queues</a>'
    changelist = reverse("admin:contacts_contact_changelist")

    assert link in signed_in("admin", "view_contact").get(changelist).content.decode()
    assert link in superuser_client().get(INDEX).content.decode()
    assert link not in signed_in("view_contact").get(changelist).content.decode()


def test_the_app_list_offers_rq_only_to_those_who_may_open_it(rq_queue):
    queues = reverse("admin:django_rq_dashboard_changelist")

    assert f'href="{queues}"' not in signed_in("view_message").get(INDEX).content.decode()


def test_a_day_without_messages_shows_nothing_sent():
    ContactFactory()
    created_days_ago(MessageFactory(status=Status.SENT), days=1)

    today = section(superuser_client().get(INDEX), "dashboard-today")

    assert "Sent 0 none yet" in today


def test_without_redis_the_dashboard_still_shows_what_the_database_knows(settings):
    # Given Redis not answering (nothing listens on its port)
    from tests.conftest import ClosedPort

    closed = ClosedPort()
    settings.REDIS_URL = f"redis://127.0.0.1:{closed.port}/8"
    redis_client.cache_clear()
    fail_enrollments(JourneyFactory(name="Onboarding"), 1)
    try:
        # When a superuser opens the admin
        response = superuser_client().get(INDEX)
    finally:
        redis_client.cache_clear()
        closed.release()

    # Then the database's figures are there, and the page says Redis did not answer
    attention = section(response, "dashboard-attention")
    assert "Onboarding : 1" in attention
    assert "Redis did not answer (ConnectionError" in attention
    assert "Scheduler" not in attention
