"""Consent rules on channels and message types hold wherever the data changes:
in the services (subscriptions.services.channel_save / message_type_save) and
in the admin, which goes through them."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from messaging.models import Message, Template
from messaging.services import message_send
from subscriptions.models import Channel, MessageType
from subscriptions.services import channel_save, message_type_save, subscription_set
from tests.admin_pages import form_data
from tests.factories import ChannelFactory, ContactFactory, MessageTypeFactory, TemplateFactory

Kind = Channel.Kind
Policy = MessageType.Policy


def admin_change(admin_client, obj, **changes):
    """Post an object's admin change form back with `changes`, as staff would."""
    url = reverse(f"admin:subscriptions_{obj._meta.model_name}_change", args=[obj.pk])
    data = form_data(admin_client.get(url))
    data.update(changes)
    return admin_client.post(url, data, follow=True)


def form_errors(response):
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}


@pytest.mark.django_db(transaction=True)
def test_switching_a_channel_with_opt_in_types_to_transactional_is_refused_in_the_admin(
    admin_client, smtp_server
):
    # Given a marketing channel with an opt-in newsletter, a contact who
    # subscribed and then unsubscribed, and one who never subscribed
    channel = ChannelFactory(name="Email", kind=Kind.MARKETING)
    news = MessageTypeFactory(channel=channel, name="Product news", policy=Policy.OPT_IN)
    ada, bob = ContactFactory(email="ada@example.com"), ContactFactory(email="bob@example.com")
    subscription_set(contact=ada, message_type=news, status="subscribed", source="api")
    subscription_set(contact=ada, message_type=news, status="unsubscribed", source="one_click")

    # When staff switch the channel to transactional in the admin
    response = admin_change(admin_client, channel, kind=Kind.TRANSACTIONAL)

    # Then the form says why it cannot, naming the message type, and nothing changed
    assert response.status_code == 200
    assert form_errors(response) == {
        "kind": [
            "Email cannot be transactional while it has message types that need a "
            "subscription: Product news (opt-in). Make them opt-out or move them to a "
            "marketing channel first."
        ]
    }
    channel.refresh_from_db()
    assert channel.kind == Kind.MARKETING
    # And the newsletter still reaches neither of them
    template = TemplateFactory(message_type=news)
    for contact in (ada, bob):
        result = message_send(
            contact=contact, template=template, idempotency_key=f"news:{contact.pk}", origin="api"
        )
        assert result.message.status == Message.Status.SKIPPED
    assert smtp_server.messages == []


@pytest.mark.django_db
def test_the_service_refuses_a_transactional_channel_with_types_that_need_consent():
    # Given a marketing channel with opt-out, opt-in and double-opt-in types
    channel = ChannelFactory(name="Email", kind=Kind.MARKETING)
    MessageTypeFactory(channel=channel, name="Onboarding", policy=Policy.OPT_OUT)
    MessageTypeFactory(channel=channel, name="Weekly digest", policy=Policy.DOUBLE_OPT_IN)
    MessageTypeFactory(channel=channel, name="Product news", policy=Policy.OPT_IN)

    # When it is saved as transactional through the service
    channel.kind = Kind.TRANSACTIONAL
    with pytest.raises(ValidationError) as refused:
        channel_save(channel=channel)

    # Then it is refused, naming every type that needs a subscription, and is stored unchanged
    assert refused.value.message_dict == {
        "kind": [
            "Email cannot be transactional while it has message types that need a "
            "subscription: Product news (opt-in), Weekly digest (double opt-in). Make them "
            "opt-out or move them to a marketing channel first."
        ]
    }
    assert Channel.objects.get(pk=channel.pk).kind == Kind.MARKETING


@pytest.mark.django_db
def test_a_channel_whose_types_are_all_opt_out_becomes_transactional():
    channel = ChannelFactory(name="Email", kind=Kind.MARKETING)
    MessageTypeFactory(channel=channel, name="Receipts", policy=Policy.OPT_OUT)

    channel.kind = Kind.TRANSACTIONAL
    result = channel_save(channel=channel)

    assert Channel.objects.get(pk=channel.pk).kind == Kind.TRANSACTIONAL
    assert result.unsubscribed_contacts == 0


@pytest.mark.django_db
def test_new_channels_are_saved_through_the_service():
    channel = channel_save(channel=Channel(name="SMS", medium="sms", kind=Kind.MARKETING)).channel

    assert Channel.objects.get(pk=channel.pk).name == "SMS"


@pytest.mark.django_db
def test_the_service_refuses_a_channel_that_breaks_a_field_rule():
    ChannelFactory(name="Email")

    with pytest.raises(ValidationError) as refused:
        channel_save(channel=Channel(name="Email", medium="carrier pigeon"))

    assert set(refused.value.message_dict) == {"name", "medium"}
    assert Channel.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_channel_that_becomes_transactional_keeps_its_contacts_unsubscribes(
    admin_client, smtp_server
):
    # Given a marketing channel with an opt-out type; Ada unsubscribed from the
    # channel, Bob from the type, and Cy never did
    channel = ChannelFactory(name="Email", kind=Kind.MARKETING)
    notices = MessageTypeFactory(channel=channel, name="Account notices", policy=Policy.OPT_OUT)
    ada, bob, cy = (ContactFactory(email=f"{name}@example.com") for name in ("ada", "bob", "cy"))
    subscription_set(contact=ada, channel=channel, status="unsubscribed", source="one_click")
    subscription_set(contact=bob, message_type=notices, status="unsubscribed", source="api")

    # When staff switch the channel to transactional
    response = admin_change(admin_client, channel, kind=Kind.TRANSACTIONAL)

    # Then it is switched, staff are told whose unsubscribes still count...
    assert response.redirect_chain[-1][0] == reverse("admin:subscriptions_channel_changelist")
    channel.refresh_from_db()
    assert channel.kind == Kind.TRANSACTIONAL
    assert (
        "2 contacts unsubscribed from Email or its message types while it was marketing. "
        "Their unsubscribes still count: they get nothing they unsubscribed from."
    ) in [str(m) for m in response.context["messages"]]
    # ...and only Cy receives the notices
    template = TemplateFactory(message_type=notices)
    outcomes = {
        contact.email: message_send(
            contact=contact, template=template, idempotency_key=contact.email, origin="api"
        ).message.skip_reason
        for contact in (ada, bob, cy)
    }
    assert outcomes == {
        "ada@example.com": "channel_unsubscribed",
        "bob@example.com": "message_type_unsubscribed",
        "cy@example.com": "",
    }
    assert [m.envelope_recipients for m in smtp_server.messages] == [["cy@example.com"]]


@pytest.mark.django_db
@pytest.mark.parametrize("policy", [Policy.OPT_IN, Policy.DOUBLE_OPT_IN])
def test_the_service_refuses_a_type_that_needs_consent_on_a_transactional_channel(policy):
    receipts = ChannelFactory(name="Receipts", kind=Kind.TRANSACTIONAL)

    with pytest.raises(ValidationError) as refused:
        message_type_save(message_type=MessageType(channel=receipts, name="News", policy=policy))

    assert refused.value.message_dict == {
        "policy": [
            "Receipts is transactional: its message types go to every contact and must be "
            "opt-out. Choose opt-out, or a marketing channel."
        ]
    }
    assert not MessageType.objects.exists()


@pytest.mark.django_db
def test_the_admin_refuses_a_type_that_needs_consent_on_a_transactional_channel(admin_client):
    receipts = ChannelFactory(name="Receipts", kind=Kind.TRANSACTIONAL)

    response = admin_client.post(
        reverse("admin:subscriptions_messagetype_add"),
        {
            "channel": receipts.pk,
            "name": "News",
            "policy": Policy.OPT_IN,
            "frequency_period": "week",
        },
    )

    assert response.status_code == 200
    assert "policy" in form_errors(response)
    assert not MessageType.objects.exists()


@pytest.mark.django_db
def test_an_opt_in_type_cannot_move_to_a_transactional_channel(admin_client):
    email = ChannelFactory(name="Email", kind=Kind.MARKETING)
    receipts = ChannelFactory(name="Receipts", kind=Kind.TRANSACTIONAL)
    news = MessageTypeFactory(channel=email, name="Product news", policy=Policy.OPT_IN)

    response = admin_change(admin_client, news, channel=receipts.pk)
    news.channel = receipts
    with pytest.raises(ValidationError):
        message_type_save(message_type=news)

    assert form_errors(response) == {
        "policy": [
            "Receipts is transactional: its message types go to every contact and must be "
            "opt-out. Choose opt-out, or a marketing channel."
        ]
    }
    assert MessageType.objects.get(pk=news.pk).channel == email


@pytest.mark.django_db
def test_the_service_judges_by_the_channel_as_stored_not_as_last_read():
    # Given a message type whose caller still holds its channel as marketing,
    # while the channel has become transactional since
    channel = ChannelFactory(name="Email", kind=Kind.MARKETING)
    message_type = MessageTypeFactory(channel=channel, policy=Policy.OPT_OUT)
    stale = MessageType.objects.select_related("channel").get(pk=message_type.pk)
    Channel.objects.filter(pk=channel.pk).update(kind=Kind.TRANSACTIONAL)

    # When the caller makes the type opt-in
    stale.policy = Policy.OPT_IN
    with pytest.raises(ValidationError) as refused:
        message_type_save(message_type=stale)

    # Then the service refuses: the channel is transactional now
    assert list(refused.value.message_dict) == ["policy"]
    assert MessageType.objects.get(pk=message_type.pk).policy == Policy.OPT_OUT


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("before", "name"),
    [(Policy.OPT_IN, "opt-in"), (Policy.DOUBLE_OPT_IN, "double opt-in")],
    ids=["opt-in", "double opt-in"],
)
def test_a_type_that_needs_consent_cannot_become_opt_out(admin_client, before, name):
    # Given an opt-in (or double-opt-in) newsletter
    news = MessageTypeFactory(name="Product news", policy=before)
    expected = {
        "policy": [
            f"Product news is {name}: made opt-out, it would go to every contact who never "
            "subscribed. Create a new opt-out message type instead."
        ]
    }

    # When staff, or any caller of the service, make it opt-out
    response = admin_change(admin_client, news, policy=Policy.OPT_OUT)
    news.policy = Policy.OPT_OUT
    with pytest.raises(ValidationError) as refused:
        message_type_save(message_type=news)

    # Then both are refused and the policy stays
    assert form_errors(response) == expected
    assert refused.value.message_dict == expected
    assert MessageType.objects.get(pk=news.pk).policy == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("before", "after"),
    [
        (Policy.OPT_OUT, Policy.OPT_IN),
        (Policy.OPT_OUT, Policy.DOUBLE_OPT_IN),
        (Policy.OPT_IN, Policy.DOUBLE_OPT_IN),
        (Policy.DOUBLE_OPT_IN, Policy.OPT_IN),
    ],
    ids=lambda policy: policy.replace("_", "-"),
)
def test_policies_may_change_when_no_one_gains_messages_they_did_not_ask_for(
    admin_client, before, after
):
    news = MessageTypeFactory(name="Product news", policy=before)

    response = admin_change(admin_client, news, policy=after)

    assert response.redirect_chain[-1][0] == reverse("admin:subscriptions_messagetype_changelist")
    assert MessageType.objects.get(pk=news.pk).policy == after


@pytest.mark.django_db
def test_a_type_cannot_move_away_from_a_channel_its_contacts_unsubscribed_from(admin_client):
    # Given Ada unsubscribed from the Email channel, and Bob from both channels
    email = ChannelFactory(name="Email", kind=Kind.MARKETING)
    news_email = ChannelFactory(name="News email", kind=Kind.MARKETING)
    digest = MessageTypeFactory(channel=email, name="Digest", policy=Policy.OPT_OUT)
    ada, bob = ContactFactory(), ContactFactory()
    for contact, channel in ((ada, email), (bob, email), (bob, news_email)):
        subscription_set(contact=contact, channel=channel, status="unsubscribed", source="api")

    # When the digest is moved to the News email channel
    response = admin_change(admin_client, digest, channel=news_email.pk)

    # Then it is refused: moved, the digest would reach Ada
    assert form_errors(response) == {
        "channel": [
            "1 contact unsubscribed from Email but not from News email: moved there, Digest "
            "would reach them. Create the message type on News email instead."
        ]
    }
    assert MessageType.objects.get(pk=digest.pk).channel == email


@pytest.mark.django_db
def test_a_type_may_move_when_no_unsubscribe_is_lifted():
    email = ChannelFactory(name="Email", kind=Kind.MARKETING)
    news_email = ChannelFactory(name="News email", kind=Kind.MARKETING)
    digest = MessageTypeFactory(channel=email, name="Digest", policy=Policy.OPT_OUT)
    bob = ContactFactory()
    for channel in (email, news_email):
        subscription_set(contact=bob, channel=channel, status="unsubscribed", source="api")

    digest.channel = news_email
    message_type_save(message_type=digest)

    assert MessageType.objects.get(pk=digest.pk).channel == news_email


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("page", "explained"),
    [
        ("channel", ["Marketing: contacts may unsubscribe", "Transactional (receipts"]),
        (
            "messagetype",
            [
                "Opt-out: every contact, unless they unsubscribed",
                "Opt-in: only contacts who subscribed",
                "Double opt-in: only contacts who subscribed and then confirmed",
                "an unsubscribe always wins",
            ],
        ),
    ],
)
def test_the_admin_explains_what_kinds_and_policies_mean_for_sending(admin_client, page, explained):
    body = admin_client.get(reverse(f"admin:subscriptions_{page}_add")).content.decode()

    for text in explained:
        assert text in body


@pytest.mark.django_db(transaction=True)
def test_a_policy_tightened_after_the_template_was_loaded_holds_at_send_time(smtp_server):
    # Given a sender (a journey batch, say) that loaded an opt-out type's template
    template = TemplateFactory(message_type__policy=Policy.OPT_OUT)
    loaded = Template.objects.select_related("message_type__channel").get(pk=template.pk)

    # When the type becomes opt-in before the send, and the sender sends to a
    # contact who never subscribed
    message_type = MessageType.objects.get(pk=template.message_type_id)
    message_type.policy = Policy.OPT_IN
    message_type_save(message_type=message_type)
    result = message_send(
        contact=ContactFactory(), template=loaded, idempotency_key="late", origin="api"
    )

    # Then nothing is sent: consent is read at the instant of sending
    assert (result.message.status, result.message.skip_reason) == ("skipped", "not_opted_in")
    assert smtp_server.messages == []
