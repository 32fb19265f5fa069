"""Consent is read when a message goes out, not when the contact entered."""

import uuid

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


def test_every_send_of_a_batch_reads_the_contact_enrollment_journey_and_consent_again(
    welcome_series, run_worker, smtp_server
):
    from contacts.models import Contact
    from contacts.services import event_track
    from journeys.services.editing import enrollments_exit, journey_set_state
    from tests.factories import ContactFactory

    # Given six contacts enrolled in the welcome series, to be sent to in one batch
    welcome_series.exit_event_name = "unsubscribed_in_app"
    welcome_series.save()
    contacts = [ContactFactory(email=f"c{i}@example.com") for i in range(6)]
    for contact in contacts:
        journeys_enroll_contact(journey=welcome_series, contact=contact)
    assert scheduler_tick() == 6  # one claim, one job

    # While the first email is being delivered: contact 1 is blocklisted,
    # contact 2 changes address, contact 3 tracks the journey's exit event,
    # contact 4 is exited from the admin, and the journey is paused
    def meanwhile(message):
        if message["To"] != "c0@example.com":
            return
        Contact.objects.filter(pk=contacts[1].pk).update(blocklisted=True)
        Contact.objects.filter(pk=contacts[2].pk).update(email="c2-new@example.com")
        event_track(name="unsubscribed_in_app", email="c3@example.com")
        enrollments_exit(
            enrollments=Enrollment.objects.filter(contact=contacts[4]),
            reason="by staff",
            kind=Enrollment.ExitKind.ADMIN,
        )
        journey_set_state(journey=welcome_series, state="paused")

    smtp_server.while_receiving = meanwhile

    # When a real worker runs the batch
    run_worker()

    # Then only the first email went out; each of the others stopped with its reason
    assert [m["To"] for m in smtp_server.messages] == ["c0@example.com"]
    messages = {m.contact_id: m for m in Message.objects.all()}
    assert messages[contacts[0].pk].status == "sent"
    assert (messages[contacts[1].pk].status, messages[contacts[1].pk].skip_reason) == (
        "skipped",
        "blocklisted",
    )
    for left in (contacts[3], contacts[4]):
        assert (messages[left.pk].status, messages[left.pk].skip_reason) == (
            "skipped",
            "left_journey",
        )
    assert "exit event" in messages[contacts[3].pk].error
    assert "by staff" in messages[contacts[4].pk].error
    # The paused journey holds contacts 2 and 5 at the send, neither sent nor dropped
    for held in (contacts[2], contacts[5]):
        assert messages[held.pk].status == "queued"
        enrollment = Enrollment.objects.get(contact=held)
        assert enrollment.current_step == welcome_series.step_map["welcome"]
        assert enrollment.lease_token is None

    # And when the journey goes live again, they get it, contact 2 at the new address
    smtp_server.while_receiving = None
    journey_set_state(journey=welcome_series, state="live")
    scheduler_tick()
    run_worker()
    assert sorted(m["To"] for m in smtp_server.messages[1:]) == [
        "c2-new@example.com",
        "c5@example.com",
    ]
    assert Message.objects.filter(status="sent").count() == 3


def test_a_send_whose_enrollment_another_worker_took_over_is_left_to_that_worker(
    welcome_series, run_worker, smtp_server
):
    from tests.factories import ContactFactory

    # Given two contacts in one batch
    first, second = ContactFactory.create_batch(2)
    for contact in (first, second):
        journeys_enroll_contact(journey=welcome_series, contact=contact)
    scheduler_tick()

    # While the first email is delivered, the second enrollment's lease passes to another worker
    def meanwhile(message):
        Enrollment.objects.filter(contact=second).update(lease_token=uuid.uuid4())

    smtp_server.while_receiving = meanwhile
    run_worker()

    # Then this worker neither sends nor records anything for the second contact
    assert [m["To"] for m in smtp_server.messages] == [first.email]
    assert Message.objects.get(contact=second).status == "queued"
    assert not Enrollment.objects.get(contact=second).step_runs.exists()


def test_a_journey_that_loops_back_to_a_send_step_is_stopped_by_the_daily_cap(
    run_worker, smtp_server, settings
):
    from messaging.services import retry_tick
    from tests.factories import (
        ConditionStepFactory,
        ContactFactory,
        JourneyFactory,
        SendMessageStepFactory,
    )

    # Given a journey whose condition leads back to its send step either way
    settings.WAYMARK_SENDING = {**settings.WAYMARK_SENDING, "DAILY_CAP": 10}
    journey = JourneyFactory()
    send = SendMessageStepFactory(journey=journey, key="send", position=1)
    ConditionStepFactory(
        journey=journey, key="loop", position=2, kind="attribute", attribute="plan",
        operator="eq", value="pro", connections={"yes": send, "no": send},
    )  # fmt: skip
    contact = ContactFactory()
    journeys_enroll_contact(journey=journey, contact=contact)

    # When the workers run it for a while
    for _ in range(3):
        scheduler_tick()
        retry_tick()
        run_worker()

    # Then the contact got ten emails, and every later send was skipped for the cap
    assert len(smtp_server.messages) == 10
    skipped = Message.objects.filter(contact=contact, status="skipped")
    assert skipped.exists()
    assert set(skipped.values_list("skip_reason", flat=True)) == {"daily_cap"}


def test_transactional_messages_are_not_held_by_the_daily_cap(smtp_server, settings):
    from messaging.services import message_send
    from subscriptions.models import Channel
    from tests.factories import (
        ChannelFactory,
        ContactFactory,
        MessageTypeFactory,
        TemplateFactory,
    )

    settings.WAYMARK_SENDING = {**settings.WAYMARK_SENDING, "DAILY_CAP": 2}
    receipts = TemplateFactory(
        message_type=MessageTypeFactory(
            channel=ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
        )
    )
    news = TemplateFactory()
    contact = ContactFactory()

    sends = [
        message_send(contact=contact, template=template, idempotency_key=f"{n}", origin="api")
        for n, template in enumerate([news, news, news, receipts, receipts, receipts])
    ]

    assert [s.message.status for s in sends] == ["sent", "sent", "skipped"] + ["sent"] * 3
    assert sends[2].message.skip_reason == "daily_cap"
