"""PATCH / DELETE /api/subscriptions/{group}/{id}/user/{email} (and byUserId/{userId}),
and PUT /api/subscriptions/{group}/{id}?action=: one list, channel or message type at a time."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact, ListMembership
from subscriptions.models import Channel, ConsentRecord, MessageType, Subscription
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    ContactListFactory,
    ListMembershipFactory,
    MessageTypeFactory,
)

pytestmark = pytest.mark.django_db

SUBSCRIBED = Subscription.Status.SUBSCRIBED
UNSUBSCRIBED = Subscription.Status.UNSUBSCRIBED


@pytest.fixture
def ada():
    return ContactFactory(email="ada@example.com", user_id="ada-1")


@pytest.fixture
def tips():
    return MessageTypeFactory(name="Tips", policy=MessageType.Policy.OPT_IN)


def test_patch_subscribes_a_user_to_a_message_type_with_a_ledger_entry(api_client, ada, tips):
    response = api_client.patch(f"/api/subscriptions/messageType/{tips.pk}/user/ada@example.com")

    assert response.status_code == 200
    assert response.json() == {"msg": "User subscribed.", "code": "Success", "params": None}
    assert Subscription.objects.get(contact=ada, message_type=tips).status == SUBSCRIBED
    record = ConsentRecord.objects.get()
    assert (record.action, record.source, record.note) == (
        "subscribed",
        "api",
        "API key test integration",
    )


def test_delete_by_user_id_unsubscribes_from_a_channel(api_client, ada):
    channel = ChannelFactory(name="Marketing email")

    response = api_client.delete(f"/api/subscriptions/MessageChannel/{channel.pk}/byUserId/ada-1")

    assert response.status_code == 200
    assert response.json()["msg"] == "User unsubscribed."
    assert Subscription.objects.get(contact=ada, channel=channel).status == UNSUBSCRIBED


def test_patch_and_delete_on_an_email_list_join_and_leave_it(api_client, ada):
    members = ContactListFactory(name="Members")
    path = f"/api/subscriptions/emailList/{members.pk}/user/ada@example.com"

    joined = api_client.patch(path)
    in_list = list(ListMembership.objects.filter(contact=ada).values_list("contact_list", "source"))
    left = api_client.delete(path)

    assert (joined.status_code, left.status_code) == (200, 200)
    assert in_list == [(members.pk, "api")]
    assert not ListMembership.objects.exists()


def test_patch_creates_an_unknown_user(api_client, tips):
    response = api_client.patch(f"/api/subscriptions/messageType/{tips.pk}/byUserId/new-1")

    assert response.status_code == 200
    contact = Contact.objects.get(user_id="new-1")
    assert Subscription.objects.get(contact=contact).status == SUBSCRIBED


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("user/nobody@example.com", "UnknownEmailError"),
        ("byUserId/nobody", "UnknownUserIdError"),
    ],
)
def test_delete_for_an_unknown_user_is_a_400_that_creates_nobody(api_client, tips, path, code):
    response = api_client.delete(f"/api/subscriptions/messageType/{tips.pk}/{path}")

    assert (response.status_code, response.json()["code"]) == (400, code)
    assert not Contact.objects.exists()
    assert not ConsentRecord.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/api/subscriptions/newsletter/1/user/ada@example.com",
        "/api/subscriptions/messageType/999999/user/ada@example.com",
        "/api/subscriptions/messageType/x/user/ada@example.com",
        "/api/subscriptions/messageType/1/user/not-an-email",
    ],
)
def test_an_unknown_group_id_or_a_bad_email_is_a_400_that_writes_nothing(api_client, ada, path):
    response = api_client.patch(path)

    assert response.status_code == 400
    assert response.json()["code"] in ("BadParams", "InvalidEmailAddressError")
    assert not Subscription.objects.exists()


def test_a_transactional_message_type_cannot_be_left(api_client, ada):
    receipts = ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
    receipt = MessageTypeFactory(channel=receipts, name="Receipt")

    response = api_client.delete(
        f"/api/subscriptions/messageType/{receipt.pk}/user/ada@example.com"
    )

    assert (response.status_code, response.json()["code"]) == (400, "BadParams")
    assert "transactional" in response.json()["msg"]
    assert not Subscription.objects.exists()


def test_bulk_put_unsubscribes_users_by_email_and_user_id_and_names_failures(api_client, ada):
    news = MessageTypeFactory(name="News")
    bo = ContactFactory(email="bo@example.com")
    body = {
        "users": ["ada@example.com", "bo@example.com", "not-an-email", "nobody@example.com"],
        "usersByUserId": ["ghost"],
    }

    response = api_client.put(
        f"/api/subscriptions/messageType/{news.pk}?action=unsubscribe", body, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {
        "msg": "2 users unsubscribed.",
        "code": "Success",
        "params": {
            "successCount": 2,
            "failCount": 3,
            "invalidEmails": ["not-an-email"],
            "invalidUserIds": [],
            "failures": [
                {"email": "nobody@example.com", "reason": "No user with email nobody@example.com."},
                {"userId": "ghost", "reason": "No user with userId ghost."},
            ],
        },
    }
    assert {s.contact for s in Subscription.objects.filter(status=UNSUBSCRIBED)} == {ada, bo}
    assert Contact.objects.count() == 2


def test_bulk_put_subscribe_creates_unknown_users(api_client, ada):
    members = ContactListFactory(name="Members")
    ListMembershipFactory(contact=ada, contact_list=members)
    body = {"users": ["ada@example.com", "new@example.com"], "usersByUserId": ["app-9"]}

    response = api_client.put(
        f"/api/subscriptions/emailList/{members.pk}?action=subscribe", body, format="json"
    )

    assert response.json()["params"]["successCount"] == 3
    assert ListMembership.objects.filter(contact_list=members).count() == 3
    assert Contact.objects.filter(email="new@example.com").exists()
    assert Contact.objects.filter(user_id="app-9").exists()


@pytest.mark.parametrize("query", ["", "?action=resubscribe"])
def test_bulk_put_needs_an_action(api_client, ada, tips, query):
    response = api_client.put(
        f"/api/subscriptions/messageType/{tips.pk}{query}",
        {"users": ["ada@example.com"]},
        format="json",
    )

    assert (response.status_code, response.json()["code"]) == (400, "BadParams")
    assert not Subscription.objects.exists()


def test_bulk_put_over_the_batch_size_is_batch_too_large(api_client, tips, settings):
    settings.WAYMARK_API = {**settings.WAYMARK_API, "MAX_BATCH": 2}
    body = {"users": ["a@example.com", "b@example.com"], "usersByUserId": ["c"]}

    response = api_client.put(
        f"/api/subscriptions/messageType/{tips.pk}?action=subscribe", body, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (400, "BatchTooLarge")
    assert not Contact.objects.exists()


def test_bulk_put_takes_as_many_queries_for_twice_the_users(api_client, tips):
    def put(start, count):
        for i in range(start, start + count, 2):
            ContactFactory(email=f"u{i}@example.com")
        body = {"users": [f"u{i}@example.com" for i in range(start, start + count)]}
        with CaptureQueriesContext(connection) as queries:
            response = api_client.put(
                f"/api/subscriptions/messageType/{tips.pk}?action=subscribe", body, format="json"
            )
        assert response.json()["params"]["successCount"] == count
        return len(queries)

    put(1000, 2)  # the key is looked up once, then cached
    few = put(0, 10)
    many = put(100, 20)

    assert many == few
    assert Subscription.objects.filter(status=SUBSCRIBED).count() == 32
