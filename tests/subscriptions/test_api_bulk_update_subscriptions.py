"""POST /api/users/bulkUpdateSubscriptions: updateSubscriptions for many users, each
applied or failed alone, in as many queries for 2N users as for N."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact, ListMembership
from subscriptions.models import ConsentRecord, MessageType, Subscription
from tests.factories import ContactFactory, ContactListFactory, MessageTypeFactory

pytestmark = pytest.mark.django_db

URL = "/api/users/bulkUpdateSubscriptions"
UNSUBSCRIBED = Subscription.Status.UNSUBSCRIBED


def test_each_request_applies_or_fails_alone_and_failures_are_named_by_position(api_client):
    news = MessageTypeFactory(name="News")
    ContactFactory(email="ada@example.com")
    ContactFactory(email="cy@example.com", user_id="cy-1")
    requests = [
        {"email": "ada@example.com", "unsubscribedMessageTypeIds": [news.pk]},
        {"email": "not-an-email", "unsubscribedMessageTypeIds": [news.pk]},
        {"userId": "new-user", "unsubscribedMessageTypeIds": [news.pk]},
        {"email": "bo@example.com", "unsubscribedMessageTypeIds": [999], "validateIds": True},
        {"email": "dee@example.com", "userId": "cy-1", "unsubscribedMessageTypeIds": [news.pk]},
        {"userId": "x", "emailListIds": "not a list"},
        "not an object",
    ]

    response = api_client.post(URL, {"updateSubscriptionsRequests": requests}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "successCount": 2,
        "failCount": 5,
        "invalidEmails": ["not-an-email"],
        "invalidUserIds": [],
        "validEmailFailures": ["bo@example.com", "dee@example.com"],
        "validUserIdFailures": ["x"],
        "failures": [
            {"index": 1, "email": "not-an-email", "reason": "email: Enter a valid email address."},
            {"index": 3, "email": "bo@example.com", "reason": "Unknown ids: message type 999."},
            {"index": 4, "email": "dee@example.com",
             "reason": "That userId already belongs to another user."},
            {"index": 5, "userId": "x",
             "reason": 'emailListIds: Expected a list of items but got type "str".'},
            {"index": 6, "reason": "Invalid data. Expected a dictionary, but got str."},
        ],
    }  # fmt: skip
    unsubscribed = Subscription.objects.filter(message_type=news, status=UNSUBSCRIBED)
    assert {s.contact.email or s.contact.user_id for s in unsubscribed} == {
        "ada@example.com",
        "new-user",
    }
    assert set(Contact.objects.values_list("email", flat=True)) == {
        "ada@example.com",
        "cy@example.com",
        None,
    }
    assert ConsentRecord.objects.filter(source="api").count() == 2


def test_requests_for_the_same_user_apply_in_order(api_client):
    news = MessageTypeFactory(name="News")
    ada = ContactFactory(email="ada@example.com")
    requests = [
        {"email": "ada@example.com", "unsubscribedMessageTypeIds": [news.pk]},
        {"email": "ADA@example.com", "unsubscribedMessageTypeIds": []},
    ]

    response = api_client.post(URL, {"updateSubscriptionsRequests": requests}, format="json")

    assert response.json()["successCount"] == 2
    assert Subscription.objects.get(contact=ada).status == Subscription.Status.SUBSCRIBED
    assert list(
        ConsentRecord.objects.filter(contact=ada).order_by("id").values_list("action", flat=True)
    ) == ["unsubscribed", "subscribed"]


def test_more_requests_than_a_batch_holds_is_batch_too_large_and_writes_nothing(
    api_client, settings
):
    settings.WAYMARK_API = {**settings.WAYMARK_API, "MAX_BATCH": 2}
    requests = [{"email": f"u{i}@example.com", "emailListIds": []} for i in range(3)]

    response = api_client.post(URL, {"updateSubscriptionsRequests": requests}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "BatchTooLarge"
    assert response.json()["params"] == {"limit": 2, "received": 3}
    assert not Contact.objects.exists()


@pytest.mark.parametrize("body", [{}, {"updateSubscriptionsRequests": {"email": "a@b.c"}}])
def test_a_body_without_a_list_of_requests_is_bad_params(api_client, body):
    response = api_client.post(URL, body, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "BadParams")
    assert not Contact.objects.exists()


def test_twice_the_users_take_no_more_queries(api_client):
    channel_types = [
        MessageTypeFactory(name="News"),
        MessageTypeFactory(name="Tips", policy=MessageType.Policy.OPT_IN),
    ]
    news, tips = channel_types
    lists = ContactListFactory.create_batch(2)

    def bulk(start, count):
        for i in range(start, start + count, 2):
            ContactFactory(email=f"u{i}@example.com")  # half of them known already
        requests = [
            {
                "email": f"u{i}@example.com",
                "unsubscribedMessageTypeIds": [news.pk],
                "subscribedMessageTypeIds": [tips.pk],
                "emailListIds": [lists[i % 2].pk],
                "unsubscribedChannelIds": [news.channel_id] if i % 3 else [],
                "validateChannelAlignment": False,
            }
            for i in range(start, start + count)
        ]
        with CaptureQueriesContext(connection) as queries:
            response = api_client.post(
                URL, {"updateSubscriptionsRequests": requests}, format="json"
            )
        assert response.json()["successCount"] == count
        return len(queries)

    bulk(1000, 2)  # the key is looked up once, then cached
    few = bulk(0, 10)
    many = bulk(100, 20)

    assert many == few
    assert ListMembership.objects.count() == 32
    assert ConsentRecord.objects.filter(message_type=tips).count() == 32


def test_a_null_or_non_object_request_in_the_batch_fails_alone(api_client):
    response = api_client.post(
        "/api/users/bulkUpdateSubscriptions",
        {"updateSubscriptionsRequests": [None, [1], {"email": "ok@example.com"}]},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["successCount"], body["failCount"]) == (1, 2)
    assert [failure["index"] for failure in body["failures"]] == [0, 1]


def test_a_user_id_of_only_whitespace_fails_its_own_entry_and_creates_nothing(api_client):
    news = MessageTypeFactory(name="News")
    requests = [
        {"userId": "\f", "unsubscribedMessageTypeIds": [news.pk]},
        {"userId": "kept", "unsubscribedMessageTypeIds": [news.pk]},
    ]

    response = api_client.post(URL, {"updateSubscriptionsRequests": requests}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["successCount"], body["failCount"]) == (1, 1)
    assert body["failures"] == [
        {"index": 0, "userId": "\f", "reason": "A userId must not be blank."}
    ]
    assert list(Contact.objects.values_list("user_id", flat=True)) == ["kept"]
