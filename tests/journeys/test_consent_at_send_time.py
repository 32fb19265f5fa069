"""Consent is read when a message goes out, not when the contact entered."""

import pytest

from journeys.models import Enrollment
from journeys.services.entry import journeys_enroll_contact
from journeys.services.scheduling import scheduler_tick
from messaging.models import Message
from subscriptions.models import MessageType
from subscriptions.services import subscription_set

pytestmark = pytest.mark.django_db(transaction=True)


def test_contact_who_unsubscribed_after_enrolling_gets_nothing(
    welcome_series, nia, run_worker, smtp_server
):
    # Given Nia entered the welcome series
    journeys_enroll_contact(journey=welcome_series, contact=nia)
    channel = welcome_series.step_map["welcome"].template.message_type.channel

    # When she unsubscribes from the channel before the email goes out
    subscription_set(contact=nia, channel=channel, status="unsubscribed", source="one_click")
    scheduler_tick()
    run_worker()

    # Then nothing is sent, the Message says why, and the journey goes on
    assert smtp_server.messages == []
    message = Message.objects.get(contact=nia)
    assert message.status == Message.Status.SKIPPED
    assert message.skip_reason == Message.SkipReason.CHANNEL_UNSUBSCRIBED
    assert Enrollment.objects.get(contact=nia).state == Enrollment.State.WAITING


def test_opt_in_message_type_is_not_sent_to_a_contact_who_never_subscribed(
    welcome_series, nia, run_worker, smtp_server
):
    # Given the welcome email's message type is opt-in and Nia never subscribed
    MessageType.objects.filter(
        pk=welcome_series.step_map["welcome"].template.message_type_id
    ).update(policy=MessageType.Policy.OPT_IN)
    journeys_enroll_contact(journey=welcome_series, contact=nia)

    # When the journey reaches the email
    scheduler_tick()
    run_worker()

    # Then it is skipped as not opted in
    assert smtp_server.messages == []
    message = Message.objects.get(contact=nia)
    assert (message.status, message.skip_reason) == ("skipped", "not_opted_in")


def test_opt_in_message_type_is_sent_once_the_contact_subscribed(
    welcome_series, nia, run_worker, smtp_server
):
    message_type = welcome_series.step_map["welcome"].template.message_type
    MessageType.objects.filter(pk=message_type.pk).update(policy=MessageType.Policy.OPT_IN)
    message_type.refresh_from_db()
    subscription_set(contact=nia, message_type=message_type, status="subscribed", source="api")
    journeys_enroll_contact(journey=welcome_series, contact=nia)

    scheduler_tick()
    run_worker()

    assert [m["Subject"] for m in smtp_server.messages] == ["Welcome, Nia!"]
