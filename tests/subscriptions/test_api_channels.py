"""GET /api/channels and GET /api/messageTypes in Iterable's shapes."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from subscriptions.models import Channel, MessageType
from tests.factories import ChannelFactory, MessageTypeFactory

pytestmark = pytest.mark.django_db


def test_channels_lists_every_channel_with_its_type_and_medium(api_client):
    email = ChannelFactory(name="Marketing email")
    receipts = ChannelFactory(
        name="Receipts", medium=Channel.Medium.EMAIL, kind=Channel.Kind.TRANSACTIONAL
    )
    sms = ChannelFactory(name="Texts", medium=Channel.Medium.SMS)
    in_app = ChannelFactory(name="In the app", medium=Channel.Medium.IN_APP)

    response = api_client.get("/api/channels")

    assert response.status_code == 200
    assert response.json() == {
        "channels": [
            {"id": email.pk, "name": "Marketing email", "channelType": "Marketing",
             "messageMedium": "Email"},
            {"id": receipts.pk, "name": "Receipts", "channelType": "Transactional",
             "messageMedium": "Email"},
            {"id": sms.pk, "name": "Texts", "channelType": "Marketing", "messageMedium": "SMS"},
            {"id": in_app.pk, "name": "In the app", "channelType": "Marketing",
             "messageMedium": "InApp"},
        ]
    }  # fmt: skip


def test_channels_answers_an_empty_list_when_there_are_none(api_client):
    response = api_client.get("/api/channels")

    assert (response.status_code, response.json()) == (200, {"channels": []})


def test_message_types_carry_channel_policy_times_and_frequency_cap(api_client):
    channel = ChannelFactory(name="Marketing email")
    news = MessageTypeFactory(channel=channel, name="News")
    tips = MessageTypeFactory(
        channel=channel,
        name="Tips",
        policy=MessageType.Policy.OPT_IN,
        frequency_limit=3,
        frequency_period=MessageType.Period.WEEK,
    )
    digest = MessageTypeFactory(
        channel=channel, name="Digest", policy=MessageType.Policy.DOUBLE_OPT_IN
    )

    response = api_client.get("/api/messageTypes")

    assert response.status_code == 200
    created = {t.pk: int(t.created_at.timestamp() * 1000) for t in (news, tips, digest)}
    assert response.json() == {
        "messageTypes": [
            {"id": news.pk, "name": "News", "channelId": channel.pk, "createdAt": created[news.pk],
             "updatedAt": created[news.pk], "subscriptionPolicy": "OptOut", "doubleOptIn": False},
            {"id": tips.pk, "name": "Tips", "channelId": channel.pk, "createdAt": created[tips.pk],
             "updatedAt": created[tips.pk], "subscriptionPolicy": "OptIn", "doubleOptIn": False,
             "frequencyCap": {"days": 7, "messages": 3}},
            {"id": digest.pk, "name": "Digest", "channelId": channel.pk,
             "createdAt": created[digest.pk], "updatedAt": created[digest.pk],
             "subscriptionPolicy": "OptIn", "doubleOptIn": True},
        ]
    }  # fmt: skip


def test_message_types_take_as_many_queries_for_nine_types_as_for_three(api_client):
    MessageTypeFactory.create_batch(3)
    api_client.get("/api/messageTypes")  # the key is looked up once, then cached
    with CaptureQueriesContext(connection) as three:
        api_client.get("/api/messageTypes")
    MessageTypeFactory.create_batch(6)

    with CaptureQueriesContext(connection) as nine:
        response = api_client.get("/api/messageTypes")

    assert len(response.json()["messageTypes"]) == 9
    assert len(nine) == len(three)


def test_a_client_side_key_may_not_read_channels(db):
    from rest_framework.test import APIClient

    from contacts.models import ApiKey
    from contacts.services import api_key_create

    _, raw = api_key_create(name="iOS app", scope=ApiKey.Scope.CLIENT)
    client = APIClient()
    client.credentials(HTTP_API_KEY=raw)

    response = client.get("/api/channels")

    assert (response.status_code, response.json()["code"]) == (403, "Forbidden")
