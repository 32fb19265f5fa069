"""Staff re-send a message whose delivery was interrupted, deliberately and on the record."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from messaging.models import Message
from messaging.services import messages_resend, retry_tick
from tests.admin_pages import result_rows
from tests.factories import ContactFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = reverse("admin:messaging_message_changelist")


def interrupted(**fields):
    """What the engine leaves when a worker died mid-delivery and its step ran again."""
    contact = ContactFactory(email="nia@example.com", attributes={"firstName": "Nia"})
    return MessageFactory(
        contact=contact,
        status=Message.Status.FAILED,
        error=Message.INTERRUPTED_ERROR,
        attempts=1,
        failed_at=timezone.now(),
        **fields,
    )


def orphaned_sending(age):
    """A row left `sending` by a worker that died, with no step to run it again."""
    message = MessageFactory(status=Message.Status.SENDING, attempts=1)
    Message.objects.filter(pk=message.pk).update(updated_at=timezone.now() - age)
    return message


def send_due(run_worker):
    # What the scheduler does each pass for messaging's retries.
    retry_tick()
    run_worker()


def test_a_resent_interrupted_message_arrives_once_and_says_who_resent_it(smtp_server, run_worker):
    # Given a message whose delivery was interrupted
    message = interrupted()

    # When Alice re-sends it and the scheduler passes
    outcome = messages_resend(messages=Message.objects.filter(pk=message.pk), actor="alice")
    send_due(run_worker)

    # Then it arrives once, and the row says it was re-sent and by whom
    assert (outcome.resent, outcome.refused) == (1, 0)
    assert [m["To"] for m in smtp_server.messages] == ["nia@example.com"]
    message.refresh_from_db()
    assert (message.status, message.attempts, message.resent_by) == ("sent", 2, "alice")
    assert message.resent_at is not None

    # and re-sending it again does nothing: it is no longer interrupted
    again = messages_resend(messages=Message.objects.filter(pk=message.pk), actor="bob")
    send_due(run_worker)
    assert (again.resent, again.refused) == (0, 1)
    assert len(smtp_server.messages) == 1
    message.refresh_from_db()
    assert message.resent_by == "alice"


def test_only_interrupted_messages_are_resent(smtp_server, run_worker, settings):
    settings.WAYMARK_ENGINE = {**settings.WAYMARK_ENGINE, "LEASE": timedelta(minutes=5)}
    # Given messages in every state, two of them interrupted
    recorded = interrupted()
    orphaned = orphaned_sending(age=timedelta(hours=2))
    in_flight = orphaned_sending(age=timedelta(seconds=30))  # a live worker may be on it
    sent = MessageFactory(status=Message.Status.SENT, sent_at=timezone.now())
    failed = MessageFactory(status=Message.Status.FAILED, error="550 No such user")
    skipped = MessageFactory(status=Message.Status.SKIPPED, skip_reason="blocklisted")

    # When staff re-send all of them
    outcome = messages_resend(messages=Message.objects.all(), actor="alice")

    # Then only the interrupted ones go back in the queue
    assert (outcome.resent, outcome.refused) == (2, 4)
    statuses = dict(Message.objects.values_list("pk", "status"))
    assert statuses == {
        recorded.pk: "queued",
        orphaned.pk: "queued",
        in_flight.pk: "sending",
        sent.pk: "sent",
        failed.pk: "failed",
        skipped.pk: "skipped",
    }
    send_due(run_worker)
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(
        [recorded.contact.email, orphaned.contact.email]
    )


def test_a_resent_message_is_checked_for_consent_again(smtp_server, run_worker):
    # Given an interrupted message to a contact blocklisted since
    message = interrupted()
    message.contact.blocklisted = True
    message.contact.save()

    messages_resend(messages=Message.objects.filter(pk=message.pk), actor="alice")
    send_due(run_worker)

    # Then it is skipped, not sent
    message.refresh_from_db()
    assert (message.status, message.skip_reason) == ("skipped", "blocklisted")
    assert smtp_server.messages == []


def staff(*permissions):
    user = UserFactory(is_superuser=False)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="messaging", codename__in=["view_message", *permissions]
        )
    )
    client = Client()
    client.force_login(user)
    return user, client


def test_staff_find_interrupted_messages_and_resend_them_from_the_admin(smtp_server, run_worker):
    message = interrupted()
    MessageFactory(status=Message.Status.SENT)
    user, client = staff("resend_message")

    # The filter shows the interrupted one only
    rows = result_rows(client.get(CHANGELIST, {"delivery": "interrupted"}))
    assert len(rows) == 1

    response = client.post(
        CHANGELIST, {"action": "resend_interrupted", "_selected_action": [message.pk]}, follow=True
    )

    assert "1 message(s) will be sent again" in response.content.decode()
    message.refresh_from_db()
    assert (message.status, message.resent_by) == ("queued", user.username)
    send_due(run_worker)
    assert [m["To"] for m in smtp_server.messages] == ["nia@example.com"]


def test_staff_without_the_permission_cannot_resend(smtp_server, run_worker):
    message = interrupted()
    _, client = staff()  # may view messages, not re-send them

    changelist = client.get(CHANGELIST)
    client.post(CHANGELIST, {"action": "resend_interrupted", "_selected_action": [message.pk]})

    assert b"resend_interrupted" not in changelist.content
    message.refresh_from_db()
    assert (message.status, message.resent_by) == ("failed", "")
    send_due(run_worker)
    assert smtp_server.messages == []
