"""MessageTally: the database counts each message once per metric, whatever
path stamped it (sending, retries, staff re-sends, tracking, provider webhooks)."""

import json
import re
from datetime import UTC, timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.db import connection
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from messaging.models import Message, MessageTally
from messaging.services import message_send, message_send_test, retry_tick
from messaging.services.tallies import message_tallies_compact
from messaging.tallies import TRIGGERS
from tests.factories import ContactFactory, MessageFactory, TemplateFactory, UserFactory
from tests.messaging.test_provider_webhooks import SIGNING_KEY, mailgun_payload

pytestmark = pytest.mark.django_db(transaction=True)


def counts(**filters) -> dict:
    """{metric: n} of the message tallies (delta and folded rows alike)."""
    rows = MessageTally.objects.filter(**filters).values_list("metric").annotate(n=Sum("n"))
    return {metric: n for metric, n in rows if n}


def send(contact, template, key="k1"):
    return message_send(contact=contact, template=template, idempotency_key=key, origin="api")


@pytest.fixture
def ada(db):
    return ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})


@pytest.mark.postgresql(reason="PostgreSQL's statement-level triggers, read from pg_trigger")
def test_the_triggers_are_installed():
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        installed = {name for (name,) in cursor.fetchall()}
    assert {name for name, _ in TRIGGERS} <= installed


def test_a_send_counts_sent_once_on_its_day_by_template_and_origin(ada, smtp_server):
    template = TemplateFactory()

    result = send(ada, template)
    send(ada, template)  # the same key again: nothing new is sent

    assert len(smtp_server.messages) == 1
    day = result.message.sent_at.astimezone(UTC).date()
    assert counts(template=template, origin="api", origin_step_id=None, day=day) == {"sent": 1}


def test_a_retry_that_sends_counts_sent_once_and_no_failure(ada, smtp_server, run_worker):
    template = TemplateFactory()
    smtp_server.refuse_with = "451 4.3.0 Try again later"
    first = send(ada, template)
    smtp_server.refuse_with = None
    assert counts(template=template) == {}

    with time_machine.travel(first.retry_at):
        assert retry_tick() == 1
        run_worker()

    assert Message.objects.get().status == "sent"
    assert counts(template=template) == {"sent": 1}


def test_an_open_through_the_tracking_pixel_counts_once(ada, smtp_server, client):
    template = TemplateFactory(html_body="<p>Hello</p>")
    send(ada, template)
    html = smtp_server.messages[0].get_body(("html",)).get_content()
    pixel = urlsplit(re.search(r'<img src="([^"]+/t/o/[^"]+)"', html).group(1)).path

    client.get(pixel)
    client.get(pixel)  # opened again: the first open is what counts

    assert counts(template=template) == {"sent": 1, "opened": 1}


def test_a_delivery_reported_by_a_provider_webhook_counts_once(ada, smtp_server, client, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    template = TemplateFactory()
    message = send(ada, template).message
    payload = json.dumps(mailgun_payload(message, "delivered"))

    for _ in range(2):  # the provider delivers its webhook twice
        response = client.post(
            "/webhooks/anymail/mailgun/tracking/", payload, content_type="application/json"
        )
        assert response.status_code == 200

    assert counts(template=template) == {"sent": 1, "delivered": 1}


def test_a_message_resent_by_staff_counts_as_sent_not_failed(smtp_server, run_worker, client):
    # Given a message whose delivery was interrupted: recorded as failed
    message = MessageFactory(
        contact=ContactFactory(email="nia@example.com"),
        status=Message.Status.FAILED,
        error=Message.INTERRUPTED_ERROR,
        attempts=1,
        failed_at=timezone.now(),
    )
    assert counts(template=message.template) == {"failed": 1}
    client.force_login(UserFactory(is_superuser=True))

    # When staff re-send it from the admin and the retry pass sends it
    client.post(
        reverse("admin:messaging_message_changelist"),
        {"action": "resend_interrupted", "_selected_action": [message.pk]},
    )
    retry_tick()
    run_worker()

    # Then it counts once, as sent
    assert [m["To"] for m in smtp_server.messages] == ["nia@example.com"]
    assert counts(template=message.template) == {"sent": 1}


def test_a_skipped_message_counts_as_skipped(smtp_server):
    template = TemplateFactory()

    send(ContactFactory(email="gone@example.com", blocklisted=True), template)

    assert counts(template=template) == {"skipped": 1}


def test_test_messages_count_nowhere(smtp_server):
    template = TemplateFactory()

    message_send_test(template=template, to_address="me@example.com")

    assert len(smtp_server.messages) == 1
    assert counts(template=template) == {}


def test_deleting_messages_takes_nothing_away(ada, smtp_server):
    template = TemplateFactory()
    send(ada, template)

    Message.objects.all().delete()  # what forgetting a contact does to its messages

    assert counts(template=template) == {"sent": 1}


def test_the_step_that_sent_a_message_is_its_key(ada):
    template = TemplateFactory()
    now = timezone.now()
    for step_id, key in ((7, "a"), (7, "b"), (8, "c")):
        MessageFactory(
            template=template, origin="journey", origin_step_id=step_id, idempotency_key=key,
            sent_at=now, opened_at=now if key == "a" else None,
        )  # fmt: skip

    assert counts(origin_step_id=7) == {"sent": 2, "opened": 1}
    assert counts(origin_step_id=8) == {"sent": 1}


def test_compaction_keeps_every_sum_and_leaves_one_row_per_key_and_day(ada):
    template = TemplateFactory()
    now = timezone.now()
    for n in range(6):
        at = now - timedelta(days=n % 2)
        MessageFactory(template=template, sent_at=at, delivered_at=at if n % 3 else None)
    Message.objects.filter(delivered_at=None).update(opened_at=now)
    before = counts(template=template)

    folded = message_tallies_compact()

    assert folded > 0
    assert counts(template=template) == before
    rows = MessageTally.objects.filter(template=template)
    assert rows.filter(folded=False).count() == 0
    keys = rows.values_list("origin", "origin_step_id", "day", "metric")
    assert len(keys) == len(set(keys))
    assert message_tallies_compact() == 0  # nothing new to fold
