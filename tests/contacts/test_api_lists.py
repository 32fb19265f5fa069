"""/api/lists/...: Iterable's contract for static lists, and what is written."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact, ContactList, ListMembership
from tests.factories import ContactFactory, ContactListFactory, ListMembershipFactory

pytestmark = pytest.mark.django_db


def _members(contact_list):
    return sorted(
        ListMembership.objects.filter(contact_list=contact_list).values_list(
            "contact__email", flat=True
        ),
        key=lambda email: email or "",
    )


# GET and POST /api/lists


def test_lists_are_listed_in_iterables_shape(api_client):
    # Given two lists, one with a description
    first = ContactListFactory(name="Newsletter", description="Weekly readers")
    second = ContactListFactory(name="Beta")
    ContactList.objects.filter(pk=first.pk).update(
        created_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    )

    # When
    response = api_client.get("/api/lists")

    # Then
    assert response.status_code == 200
    lists = response.json()["lists"]
    assert lists[0] == {
        "id": first.pk,
        "name": "Newsletter",
        "createdAt": 1704164645000,
        "listType": "Standard",
        "description": "Weekly readers",
    }
    assert lists[1]["id"] == second.pk
    assert "description" not in lists[1]


def test_creating_a_list_answers_its_id(api_client):
    response = api_client.post(
        "/api/lists", {"name": "VIP", "description": "Big spenders"}, format="json"
    )

    assert response.status_code == 200
    contact_list = ContactList.objects.get()
    assert response.json() == {"listId": contact_list.pk}
    assert (contact_list.name, contact_list.description) == ("VIP", "Big spenders")


def test_a_list_name_in_use_is_refused(api_client):
    ContactListFactory(name="VIP")

    response = api_client.post("/api/lists", {"name": "VIP"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert ContactList.objects.count() == 1


def test_a_list_without_a_name_is_refused(api_client):
    response = api_client.post("/api/lists", {"description": "?"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert not ContactList.objects.exists()


# DELETE /api/lists/{listId} and GET /api/lists/{listId}/size


def test_deleting_a_list_keeps_its_contacts(api_client):
    membership = ListMembershipFactory()

    response = api_client.delete(f"/api/lists/{membership.contact_list_id}")

    assert response.status_code == 200
    assert response.json() == {
        "msg": f"List {membership.contact_list_id} deleted.",
        "code": "Success",
        "params": None,
    }
    assert not ContactList.objects.exists()
    assert not ListMembership.objects.exists()
    assert Contact.objects.filter(pk=membership.contact_id).exists()


@pytest.mark.parametrize(
    "method, path",
    [
        ("delete", "/api/lists/{}"),
        ("get", "/api/lists/{}/size"),
        ("get", "/api/lists/getUsers?listId={}"),
        ("get", "/api/lists/previewUsers?listId={}"),
    ],
)
@pytest.mark.parametrize("list_id", [999999, 2**64, -1, "abc"])
def test_an_unknown_list_is_bad_params(api_client, method, path, list_id):
    ContactListFactory()

    response = getattr(api_client, method)(path.format(list_id))

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert ContactList.objects.count() == 1


def test_the_size_of_a_list_is_its_member_count_as_text(api_client):
    contact_list = ContactListFactory()
    ListMembershipFactory.create_batch(3, contact_list=contact_list)
    ListMembershipFactory()  # in another list

    response = api_client.get(f"/api/lists/{contact_list.pk}/size")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"3"


# GET /api/lists/getUsers and /api/lists/previewUsers


def test_get_users_streams_one_member_a_line(api_client, django_assert_max_num_queries):
    # Given a list with members by email, by userId only, and both
    contact_list = ContactListFactory()
    for contact in [
        ContactFactory(email="a@example.com"),
        ContactFactory(email=None, user_id="only-id"),
        ContactFactory(email="b@example.com", user_id="b-id"),
    ]:
        ListMembershipFactory(contact_list=contact_list, contact=contact)

    # When its members are read, by email and preferring userIds
    response = api_client.get(f"/api/lists/getUsers?listId={contact_list.pk}")
    preferring = api_client.get(f"/api/lists/getUsers?listId={contact_list.pk}&preferUserId=true")

    # Then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.streaming
    assert b"".join(response.streaming_content) == b"a@example.com\nonly-id\nb@example.com\n"
    assert b"".join(preferring.streaming_content) == b"a@example.com\nonly-id\nb-id\n"


def test_get_users_reads_a_long_list_in_chunks(api_client):
    from contacts.services.lists import list_member_identities

    contact_list = ContactListFactory()
    for n in range(7):
        ListMembershipFactory(contact_list=contact_list, contact=ContactFactory(email=f"m{n}@x.io"))

    with CaptureQueriesContext(connection) as queries:
        members = list(list_member_identities(contact_list=contact_list, chunk=3))

    assert members == [f"m{n}@x.io" for n in range(7)]
    assert len(queries) == 3


def test_preview_users_answers_a_sample_of_the_requested_size(api_client):
    contact_list = ContactListFactory()
    emails = {f"m{n}@example.com" for n in range(5)}
    for email in emails:
        ListMembershipFactory(contact_list=contact_list, contact=ContactFactory(email=email))

    response = api_client.get(f"/api/lists/previewUsers?listId={contact_list.pk}&size=3")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    lines = response.content.decode().splitlines()
    assert len(lines) == 3
    assert set(lines) <= emails


@pytest.mark.parametrize("query", ["", "listId=abc", "listId=1&size=0", "listId=1&size=5001"])
def test_preview_users_refuses_bad_parameters(api_client, query):
    ContactListFactory(pk=1)

    response = api_client.get(f"/api/lists/previewUsers?{query}")

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"


# POST /api/lists/subscribe

SUBSCRIBE = "/api/lists/subscribe"


def test_subscribe_adds_known_and_new_users_and_merges_their_data(api_client):
    # Given a list with one member, and a known contact with data
    contact_list = ContactListFactory()
    member = ContactFactory(email="member@example.com")
    ListMembershipFactory(contact_list=contact_list, contact=member, source="admin")
    known = ContactFactory(email="known@example.com", attributes={"plan": "free", "a": {"x": 1}})

    # When the member, the known contact and two new users are subscribed
    response = api_client.post(
        SUBSCRIBE,
        {
            "listId": contact_list.pk,
            "subscribers": [
                {"email": "member@example.com"},
                {
                    "email": "KNOWN@example.com",
                    "dataFields": {"plan": "pro", "a": {"y": 2}},
                    "mergeNestedObjects": True,
                },
                {"email": "new@example.com", "dataFields": {"firstName": "Ana"}},
                {"userId": "app-9"},
            ],
        },
        format="json",
    )

    # Then all four are members, new ones from the API, and profiles are merged
    assert response.status_code == 200
    body = response.json()
    assert (body["successCount"], body["failCount"], body["failures"]) == (4, 0, [])
    assert _members(contact_list) == [
        None,
        "known@example.com",
        "member@example.com",
        "new@example.com",
    ]
    assert ListMembership.objects.get(contact=member).source == "admin"
    assert ListMembership.objects.get(contact=known).source == ListMembership.Source.API
    known.refresh_from_db()
    assert known.attributes == {"plan": "pro", "a": {"x": 1, "y": 2}}
    assert Contact.objects.get(email="new@example.com").attributes == {"firstName": "Ana"}
    assert Contact.objects.get(user_id="app-9").email is None


def test_subscribe_reports_bad_and_unknown_users_by_position(api_client):
    # Given a list and one known contact
    contact_list = ContactListFactory()
    ContactFactory(email="known@example.com")

    # When only existing users may be added
    response = api_client.post(
        SUBSCRIBE,
        {
            "listId": contact_list.pk,
            "updateExistingUsersOnly": True,
            "subscribers": [
                {"email": "bad-email"},
                {"email": "known@example.com"},
                {"email": "nobody@example.com"},
                {"userId": "ghost"},
                {"userId": " "},
            ],
        },
        format="json",
    )

    # Then the known one is added and the others are reported
    body = response.json()
    assert (body["successCount"], body["failCount"]) == (1, 4)
    assert [(f["index"], f["reason"]) for f in body["failures"]] == [
        (0, "invalidEmail"),
        (2, "notFound"),
        (3, "notFound"),
        (4, "invalidUserId"),
    ]
    assert body["failedUpdates"]["invalidEmails"] == ["bad-email"]
    assert body["failedUpdates"]["invalidUserIds"] == [" "]
    assert body["failedUpdates"]["notFoundEmails"] == ["nobody@example.com"]
    assert body["failedUpdates"]["notFoundUserIds"] == ["ghost"]
    assert body["invalidEmails"] == ["bad-email", "nobody@example.com"]
    assert body["invalidUserIds"] == ["ghost", " "]
    assert _members(contact_list) == ["known@example.com"]
    assert Contact.objects.count() == 1


def test_subscribe_to_an_unknown_list_writes_nothing(api_client):
    response = api_client.post(
        SUBSCRIBE, {"listId": 424242, "subscribers": [{"email": "a@example.com"}]}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"subscribers": []},
        {"listId": 1},
        {"listId": 1, "subscribers": [{"dataFields": {}}]},
        {"listId": 1, "subscribers": [{"email": "a@example.com", "dataFields": "x"}]},
    ],
)
def test_a_malformed_subscribe_is_refused_whole(api_client, body):
    ContactListFactory(pk=1)

    response = api_client.post(SUBSCRIBE, body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert not Contact.objects.exists()
    assert not ListMembership.objects.exists()


def test_too_many_subscribers_are_refused(api_client, settings):
    settings.WAYMARK_API = {**settings.WAYMARK_API, "MAX_BATCH": 2}
    contact_list = ContactListFactory()
    subscribers = [{"email": f"c{n}@example.com"} for n in range(3)]

    response = api_client.post(
        SUBSCRIBE, {"listId": contact_list.pk, "subscribers": subscribers}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (400, "BatchTooLarge")
    assert not Contact.objects.exists()


def test_subscribe_costs_the_same_queries_for_n_or_2n_users(api_client):
    contact_list = ContactListFactory()
    api_client.get("/api/lists")  # the key is cached from now on

    def queries_for(n):
        known = [ContactFactory(email=f"k{i}-{n}@example.com") for i in range(n)]
        subscribers = [{"email": c.email, "dataFields": {"n": n}} for c in known]
        subscribers += [{"email": f"new{i}-{n}@example.com"} for i in range(n)]
        subscribers += [{"userId": f"u{i}-{n}"} for i in range(n)]
        with CaptureQueriesContext(connection) as queries:
            response = api_client.post(
                SUBSCRIBE, {"listId": contact_list.pk, "subscribers": subscribers}, format="json"
            )
        assert response.json()["successCount"] == 3 * n
        return len(queries)

    assert queries_for(10) == queries_for(20)
    assert ListMembership.objects.filter(contact_list=contact_list).count() == 90


# POST /api/lists/unsubscribe

UNSUBSCRIBE = "/api/lists/unsubscribe"


def test_unsubscribe_removes_members_and_leaves_consent_alone(api_client):
    # Given a list with three members, one also in another list
    from subscriptions.models import ConsentRecord, Subscription

    contact_list, other_list = ContactListFactory(), ContactListFactory()
    a, b, c = (ContactFactory(email=f"{x}@example.com", user_id=f"id-{x}") for x in "abc")
    for contact in (a, b, c):
        ListMembershipFactory(contact_list=contact_list, contact=contact)
    ListMembershipFactory(contact_list=other_list, contact=a)
    outsider = ContactFactory(email="outsider@example.com")

    # When two members, a non-member and an unknown user are removed
    response = api_client.post(
        UNSUBSCRIBE,
        {
            "listId": contact_list.pk,
            "subscribers": [
                {"email": "A@example.com"},
                {"userId": "id-b"},
                {"email": outsider.email},
                {"email": "ghost@example.com"},
            ],
        },
        format="json",
    )

    # Then they leave this list only, the unknown one is reported, consent is untouched
    assert response.status_code == 200
    body = response.json()
    assert (body["successCount"], body["failCount"]) == (3, 1)
    assert body["failures"] == [
        {
            "index": 3,
            "email": "ghost@example.com",
            "userId": None,
            "reason": "notFound",
            "msg": "No such user.",
        }
    ]
    assert body["failedUpdates"]["notFoundEmails"] == ["ghost@example.com"]
    assert _members(contact_list) == ["c@example.com"]
    assert _members(other_list) == ["a@example.com"]
    assert not Subscription.objects.exists()
    assert not ConsentRecord.objects.exists()
    assert Contact.objects.count() == 4


def test_a_channel_unsubscribe_records_consent_under_the_key_name(api_client):
    # Given members, a marketing and a transactional email channel
    from subscriptions.models import Channel, ConsentRecord, ConsentSource, Subscription
    from tests.factories import ChannelFactory

    marketing = ChannelFactory(name="Newsletter email")
    ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
    ChannelFactory(name="Promo SMS", medium=Channel.Medium.SMS)
    contact_list = ContactListFactory()
    a, b = ContactFactory(email="a@example.com"), ContactFactory(email="b@example.com")
    for contact in (a, b):
        ListMembershipFactory(contact_list=contact_list, contact=contact)

    # When one leaves the list with channelUnsubscribe
    response = api_client.post(
        UNSUBSCRIBE,
        {
            "listId": contact_list.pk,
            "subscribers": [{"email": "a@example.com"}],
            "channelUnsubscribe": True,
            "campaignId": 77,
        },
        format="json",
    )

    # Then it is unsubscribed from the marketing email channel only, on the ledger
    assert response.status_code == 200
    assert response.json()["successCount"] == 1
    assert _members(contact_list) == ["b@example.com"]
    subscription = Subscription.objects.get()
    assert (subscription.contact, subscription.channel) == (a, marketing)
    assert subscription.status == Subscription.Status.UNSUBSCRIBED
    record = ConsentRecord.objects.get()
    assert (record.contact, record.channel, record.source) == (a, marketing, ConsentSource.API)
    assert record.action == ConsentRecord.Action.UNSUBSCRIBED
    assert (
        record.note
        == f"API key 'test integration': lists/unsubscribe, list {contact_list.pk}, campaign 77"
    )


def test_unsubscribe_from_an_unknown_list_writes_nothing(api_client):
    from subscriptions.models import ConsentRecord
    from tests.factories import ChannelFactory

    ChannelFactory()
    membership = ListMembershipFactory()

    response = api_client.post(
        UNSUBSCRIBE,
        {
            "listId": membership.contact_list_id + 1000,
            "subscribers": [{"email": membership.contact.email}],
            "channelUnsubscribe": True,
        },
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert ListMembership.objects.count() == 1
    assert not ConsentRecord.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"listId": 1},
        {"listId": 1, "subscribers": [{}]},
        {"listId": 1, "subscribers": [{"email": "a@example.com"}], "channelUnsubscribe": "x"},
    ],
)
def test_a_malformed_unsubscribe_is_refused_whole(api_client, body):
    contact_list = ContactListFactory(pk=1)
    ListMembershipFactory(contact_list=contact_list, contact=ContactFactory(email="a@example.com"))

    response = api_client.post(UNSUBSCRIBE, body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert ListMembership.objects.count() == 1


def test_unsubscribe_costs_the_same_queries_for_n_or_2n_users(api_client):
    contact_list = ContactListFactory()
    api_client.get("/api/lists")  # the key is cached from now on

    def queries_for(n):
        members = [ContactFactory(email=f"m{i}-{n}@example.com") for i in range(n)]
        for contact in members:
            ListMembershipFactory(contact_list=contact_list, contact=contact)
        subscribers = [{"email": c.email} for c in members]
        subscribers += [{"userId": f"ghost{i}-{n}"} for i in range(n)]
        with CaptureQueriesContext(connection) as queries:
            response = api_client.post(
                UNSUBSCRIBE,
                {"listId": contact_list.pk, "subscribers": subscribers},
                format="json",
            )
        assert (response.json()["successCount"], response.json()["failCount"]) == (n, n)
        return len(queries)

    assert queries_for(10) == queries_for(20)
    assert not ListMembership.objects.exists()


def test_a_channel_unsubscribe_costs_the_same_queries_for_n_or_2n_users(api_client):
    from subscriptions.models import ConsentRecord
    from tests.factories import ChannelFactory

    ChannelFactory()  # a marketing email channel
    contact_list = ContactListFactory()
    api_client.get("/api/lists")  # the key is cached from now on

    def queries_for(n):
        members = [ContactFactory(email=f"c{i}-{n}@example.com") for i in range(n)]
        for contact in members:
            ListMembershipFactory(contact_list=contact_list, contact=contact)
        body = {
            "listId": contact_list.pk,
            "subscribers": [{"email": c.email} for c in members],
            "channelUnsubscribe": True,
        }
        with CaptureQueriesContext(connection) as queries:
            response = api_client.post(UNSUBSCRIBE, body, format="json")
        assert response.json()["successCount"] == n
        return len(queries)

    assert queries_for(10) == queries_for(20)
    assert ConsentRecord.objects.filter(source="api", action="unsubscribed").count() == 30
