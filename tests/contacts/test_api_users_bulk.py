"""POST /api/users/bulkUpdate: Iterable's bulk answer, per-user failures, set-based writes."""

import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from contacts.models import ApiKey, Contact
from contacts.services import api_key_create
from tests.databases import PARALLEL_WRITERS
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

URL = "/api/users/bulkUpdate"

NO_FAILURES = {
    "conflictEmails": [],
    "conflictUserIds": [],
    "invalidEmails": [],
    "invalidUserIds": [],
    "invalidDataEmails": [],
    "invalidDataUserIds": [],
}


def test_bulk_update_creates_and_updates_users(api_client):
    ContactFactory(email="ada@example.com", attributes={"plan": "free", "age": 36})

    response = api_client.post(
        URL,
        {
            "users": [
                {"email": "ada@example.com", "dataFields": {"plan": "pro"}},
                {"email": "Nia@Example.com", "userId": "u-2", "dataFields": {"plan": "free"}},
                {"userId": "u-3"},
            ]
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {
        "successCount": 3,
        "failCount": 0,
        "invalidEmails": [],
        "invalidUserIds": [],
        "failedUpdates": NO_FAILURES,
        "failures": [],
    }
    assert list(Contact.objects.order_by("pk").values_list("email", "user_id", "attributes")) == [
        ("ada@example.com", None, {"plan": "pro", "age": 36}),
        ("nia@example.com", "u-2", {"plan": "free"}),
        (None, "u-3", {}),
    ]


def test_a_user_named_twice_gets_both_updates_in_order(api_client):
    response = api_client.post(
        URL,
        {
            "users": [
                {"email": "nia@example.com", "dataFields": {"a": 1, "b": 1}},
                {"email": "nia@example.com", "userId": "u-1", "dataFields": {"b": 2}},
                {"userId": "u-1", "dataFields": {"c": 3}},
            ]
        },
        format="json",
    )

    assert response.json()["successCount"] == 3
    assert list(Contact.objects.values_list("email", "user_id", "attributes")) == [
        ("nia@example.com", "u-1", {"a": 1, "b": 2, "c": 3})
    ]


def test_each_bad_user_fails_alone_by_position_and_the_rest_are_written(api_client, settings):
    settings.WAYMARK_DEFAULT_PHONE_REGION = ""
    ContactFactory(email="ada@example.com", user_id="u-ada")
    ContactFactory(email="bob@example.com", user_id="u-bob")
    users = [
        {"email": "ok1@example.com", "dataFields": {"n": 1}},
        {"email": "not-an-email", "dataFields": {"n": 2}},
        {"userId": "x" * 256},
        {"dataFields": {"n": 4}},
        {"email": "ada@example.com", "userId": "u-bob"},
        {"email": "bad-phone@example.com", "dataFields": {"phoneNumber": "12"}},
        "not an object",
        {"email": "ok2@example.com", "userId": "u-ok2"},
    ]

    response = api_client.post(URL, {"users": users}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["successCount"], body["failCount"]) == (2, 6)
    assert [(f["index"], f["reason"]) for f in body["failures"]] == [
        (1, "invalidEmail"),
        (2, "invalidUserId"),
        (3, "invalidData"),
        (4, "conflict"),
        (5, "invalidData"),
        (6, "invalidData"),
    ]
    assert all(f["msg"] for f in body["failures"])
    assert body["failedUpdates"] == {
        **NO_FAILURES,
        "invalidEmails": ["not-an-email"],
        "invalidUserIds": ["x" * 256],
        "conflictEmails": ["ada@example.com"],
        "conflictUserIds": ["u-bob"],
        "invalidDataEmails": ["bad-phone@example.com"],
    }
    assert body["invalidEmails"] == ["not-an-email", "ada@example.com", "bad-phone@example.com"]
    assert body["invalidUserIds"] == ["x" * 256, "u-bob"]
    assert sorted(Contact.objects.values_list("email", "user_id")) == [
        ("ada@example.com", "u-ada"),
        ("bob@example.com", "u-bob"),
        ("ok1@example.com", None),
        ("ok2@example.com", "u-ok2"),
    ]


@pytest.mark.parametrize(
    "body",
    [{}, {"users": "all of them"}, {"users": None}, [1, 2]],
    ids=["no users", "not a list", "null", "not an object"],
)
def test_a_body_without_a_list_of_users_is_a_400_that_writes_nothing(api_client, body):
    response = api_client.post(URL, body, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"msg", "code", "params"}
    assert response.json()["code"] == "BadParams"
    assert not Contact.objects.exists()


def test_too_many_users_is_batch_too_large_and_writes_nothing(api_client, settings):
    settings.WAYMARK_API = {**settings.WAYMARK_API, "MAX_BATCH": 2}
    users = [{"email": f"u{n}@example.com"} for n in range(3)]

    response = api_client.post(URL, {"users": users}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "msg": "users holds 3 items; at most 2 are taken per request.",
        "code": "BatchTooLarge",
        "params": {"limit": 2, "received": 3},
    }
    assert not Contact.objects.exists()


def test_data_that_cannot_be_stored_refuses_the_whole_request(api_client):
    ContactFactory(email="ada@example.com", attributes={"plan": "free"})
    body = (
        b'{"users": [{"email": "ada@example.com", "dataFields": {"plan": "pro"}},'
        b' {"email": "nia@example.com", "dataFields": {"note": "a\\u0000b"}}]}'
    )

    response = api_client.post(URL, body, content_type="application/json")

    assert (response.status_code, response.json()["code"]) == (400, "BadJsonBody")
    assert list(Contact.objects.values_list("email", "attributes")) == [
        ("ada@example.com", {"plan": "free"})
    ]


def test_merge_nested_objects_is_per_user(api_client):
    ContactFactory(email="ada@example.com", attributes={"s": {"a": 1}})
    ContactFactory(email="bob@example.com", attributes={"s": {"a": 1}})

    api_client.post(
        URL,
        {
            "users": [
                {"email": "ada@example.com", "dataFields": {"s": {"b": 2}}},
                {
                    "email": "bob@example.com",
                    "dataFields": {"s": {"b": 2}},
                    "mergeNestedObjects": True,
                },
            ]
        },
        format="json",
    )

    assert dict(Contact.objects.values_list("email", "attributes")) == {
        "ada@example.com": {"s": {"b": 2}},
        "bob@example.com": {"s": {"a": 1, "b": 2}},
    }


def test_an_empty_list_updates_nobody(api_client):
    response = api_client.post(URL, {"users": []}, format="json")

    assert (response.json()["successCount"], response.json()["failCount"]) == (0, 0)


def test_a_client_side_key_may_not_bulk_update():
    _, raw = api_key_create(name="web", scope=ApiKey.Scope.CLIENT)
    client = APIClient()
    client.credentials(HTTP_API_KEY=raw)

    response = client.post(URL, {"users": [{"email": "a@example.com"}]}, format="json")

    assert (response.status_code, response.json()["code"]) == (403, "Forbidden")
    assert not Contact.objects.exists()


def _bulk_queries(api_client, size, start):
    """Queries for a request that updates `size` known users and creates `size` new ones."""
    for n in range(start, start + size):
        ContactFactory(email=f"known{n}@example.com", user_id=f"k{n}")
    users = [
        {"email": f"known{n}@example.com", "dataFields": {"n": n, "o": {"x": n}}}
        for n in range(start, start + size)
    ] + [
        {"email": f"new{n}@example.com", "userId": f"n{n}", "dataFields": {"n": n}}
        for n in range(start, start + size)
    ]
    with CaptureQueriesContext(connection) as queries:
        response = api_client.post(URL, {"users": users}, format="json")
    assert response.json()["successCount"] == 2 * size
    return len(queries)


def test_the_number_of_queries_does_not_grow_with_the_number_of_users(api_client):
    # A first request looks the key up; the key is cached for the next ones.
    api_client.post(URL, {"users": []}, format="json")
    with_ten = _bulk_queries(api_client, 10, start=0)
    with_twenty = _bulk_queries(api_client, 20, start=100)

    assert with_twenty == with_ten
    assert Contact.objects.get(email="known105@example.com").attributes == {
        "firstName": "Ada",
        "n": 105,
        "o": {"x": 105},
    }
    assert Contact.objects.get(email="new119@example.com").user_id == "n119"


@pytest.mark.postgresql(reason=PARALLEL_WRITERS)
@pytest.mark.django_db(transaction=True)
def test_a_user_created_meanwhile_by_another_request_is_updated_not_duplicated():
    # Given another request that has created nia but not yet committed
    from django.db import transaction

    from contacts.services.users import UserUpdate, users_update

    outcome = {}

    def bulk_update_in_another_request():
        try:
            outcome["result"] = users_update(
                updates=[UserUpdate(email="nia@example.com", data={"plan": "pro"})]
            )
        finally:
            connection.close()

    with transaction.atomic():
        Contact.objects.create(email="nia@example.com", attributes={"age": 36})
        # When a bulk update that does not see it yet tries to create nia too
        racer = threading.Thread(target=bulk_update_in_another_request)
        racer.start()
        racer.join(timeout=1)  # it waits on the insert until this commits
    racer.join(timeout=30)

    # Then its insert loses, and the batch runs again and updates the stored nia
    assert not racer.is_alive()
    assert outcome["result"].failures == []
    assert list(Contact.objects.values_list("email", "attributes")) == [
        ("nia@example.com", {"age": 36, "plan": "pro"})
    ]
