"""A send found `sending` is recorded as interrupted, unless its outcome was
recorded meanwhile by a worker that was slow rather than dead."""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from messaging.models import Message
from messaging.services import SendRequest, messages_send
from tests.databases import PARALLEL_WRITERS
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db(transaction=True)


def send_again(message):
    return messages_send(
        [
            SendRequest(
                contact=message.contact,
                template=message.template,
                idempotency_key=message.idempotency_key,
                origin=message.origin,
            )
        ]
    )


def test_a_message_left_sending_is_recorded_as_interrupted_not_sent_again(smtp_server):
    message = MessageFactory(status=Message.Status.SENDING, attempts=1)

    (result,) = send_again(message)

    message.refresh_from_db()
    assert (message.status, message.error) == ("failed", Message.INTERRUPTED_ERROR)
    assert result.detail == "interrupted"
    assert smtp_server.messages == []


def waiting_on_a_lock():
    with connection.cursor() as cursor:
        # Within a transaction PostgreSQL shows the activity seen at its first
        # look: clear that snapshot, or a late second worker is never seen.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.postgresql(reason=PARALLEL_WRITERS)
def test_a_sent_outcome_recorded_meanwhile_is_not_overwritten_as_interrupted(smtp_server):
    # Given a message still `sending` as a second worker reads it
    message = MessageFactory(status=Message.Status.SENDING, attempts=1)
    results = []

    def second_worker():
        try:
            results.extend(send_again(message))
        finally:
            connections.close_all()

    with transaction.atomic():
        # The first worker, slow but alive, holds the row while it records its outcome
        Message.objects.select_for_update().get(pk=message.pk)
        thread = threading.Thread(target=second_worker)
        thread.start()
        deadline = time.monotonic() + 30
        while not waiting_on_a_lock() and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert waiting_on_a_lock(), "the second worker never reached the row"
        Message.objects.filter(pk=message.pk).update(
            status=Message.Status.SENT, sent_at=timezone.now()
        )
    thread.join(timeout=30)

    # Then the delivered message stays sent, and the second worker says so
    message.refresh_from_db()
    assert (message.status, message.error) == ("sent", "")
    (result,) = results
    assert (result.message.status, result.detail) == ("sent", "already sent")
    assert smtp_server.messages == []
