"""GET /api/inApp/getMessages and GET /api/users/getSentMessages: what a user was sent."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from contacts.models import ApiKey, Contact
from contacts.services import api_key_create
from messaging.models import InAppMessage, Message
from tests.factories import ContactFactory, MessageFactory, medium_message, medium_template

pytestmark = pytest.mark.django_db

IN_APP = "/api/inApp/getMessages"
SENT = "/api/users/getSentMessages"

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def client_key_client():
    _, raw = api_key_create(name="iOS app", scope=ApiKey.Scope.CLIENT)
    client = APIClient()
    client.credentials(HTTP_API_KEY=raw)
    return client


def in_app_entry(contact, template, *, at, **fields):
    message = medium_message(
        template, contact, status="sent", sent_at=at, to_address=contact.user_id or contact.email
    )
    entry = InAppMessage.objects.create(
        contact=contact,
        message=message,
        title=fields.pop("title", "Hi"),
        body=fields.pop("body", "Hello."),
        **fields,
    )
    InAppMessage.objects.filter(pk=entry.pk).update(created_at=at)
    entry.refresh_from_db()
    return entry


@pytest.fixture
def in_app_template(db):
    return medium_template("in_app", title="Hi", text_body="Hello.")


# --- in-app messages ------------------------------------------------------------------


def test_get_messages_answers_iterables_in_app_messages_newest_first(api_client, in_app_template):
    ada = ContactFactory(email="ada@example.com", user_id="u-1")
    older = in_app_entry(
        ada,
        in_app_template,
        at=T0,
        title="Your <order>",
        body="Shipped\ntoday",
        url="https://acme.test/orders/1",
        read_at=T0 + timedelta(hours=1),
    )
    newer = in_app_entry(
        ada, in_app_template, at=T0 + timedelta(days=1), expires_at=T0 + timedelta(days=3000)
    )

    response = api_client.get(IN_APP, {"email": "ada@example.com", "count": 10})

    assert response.status_code == 200
    messages = response.json()["inAppMessages"]
    assert [m["messageId"] for m in messages] == [str(newer.message_id), str(older.message_id)]
    second = messages[1]
    assert second["campaignId"] == in_app_template.pk
    assert second["createdAt"] == "2026-03-01T12:00:00Z"
    assert "expiresAt" not in second
    assert messages[0]["expiresAt"] == "2034-05-18T12:00:00Z"
    assert second["read"] is True and messages[0]["read"] is False
    assert second["customPayload"] == {
        "title": "Your <order>",
        "body": "Shipped\ntoday",
        "url": "https://acme.test/orders/1",
    }
    assert second["inboxMetadata"] == {"title": "Your <order>", "subtitle": "Shipped\ntoday"}
    html = second["content"]["html"]
    assert "<h2>Your &lt;order&gt;</h2>" in html
    assert "<p>Shipped<br>today</p>" in html
    assert '<a href="https://acme.test/orders/1">' in html
    assert second["content"]["webInAppDisplaySettings"] == {"position": "Center"}
    assert {
        key: second[key]
        for key in (
            "trigger",
            "saveToInbox",
            "jsonOnly",
            "messageType",
            "typeOfContent",
            "priorityLevel",
        )
    } == {
        "trigger": {"type": "immediate"},
        "saveToInbox": True,
        "jsonOnly": False,
        "messageType": "Mobile",
        "typeOfContent": "Static",
        "priorityLevel": 300.5,
    }


def test_get_messages_by_user_id_with_a_count_and_without_expired_ones(api_client, in_app_template):
    ada = ContactFactory(user_id="u-1", email=None)
    kept = [in_app_entry(ada, in_app_template, at=T0 + timedelta(hours=n)) for n in range(3)]
    in_app_entry(ada, in_app_template, at=T0 + timedelta(hours=5), expires_at=T0)
    in_app_entry(ContactFactory(), in_app_template, at=T0 + timedelta(hours=6))  # someone else's

    response = api_client.get(IN_APP, {"userId": "u-1", "count": 2, "platform": "Web"})

    messages = response.json()["inAppMessages"]
    assert [m["messageId"] for m in messages] == [str(kept[2].message_id), str(kept[1].message_id)]
    assert {m["messageType"] for m in messages} == {"Web"}


def test_an_unknown_user_has_no_in_app_messages(api_client):
    response = api_client.get(IN_APP, {"email": "nobody@example.com", "count": 5})

    assert response.status_code == 200
    assert response.json() == {"inAppMessages": []}
    assert not Contact.objects.exists()


def test_an_app_may_read_its_users_messages_with_a_client_side_key(in_app_template):
    in_app_entry(ContactFactory(user_id="u-1"), in_app_template, at=T0)

    response = client_key_client().get(IN_APP, {"userId": "u-1", "count": 5})

    assert response.status_code == 200
    assert len(response.json()["inAppMessages"]) == 1


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"email": "ada@example.com"}, "BadParams"),
        ({"count": 5}, "BadParams"),
        ({"email": "not-an-email", "count": 5}, "InvalidEmailAddressError"),
        ({"email": "ada@example.com", "count": 0}, "BadParams"),
        ({"email": "ada@example.com", "count": 1001}, "BadParams"),
        ({"email": "ada@example.com", "count": "many"}, "BadParams"),
        ({"email": "ada@example.com", "count": 5, "platform": "ios"}, "BadParams"),
    ],
)
def test_a_malformed_in_app_query_is_a_400(api_client, query, code):
    response = api_client.get(IN_APP, query)

    assert response.status_code == 400
    body = response.json()
    assert (body["code"], set(body)) == (code, {"msg", "code", "params"})


def queries_for(client, path, query):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, query)
    assert response.status_code == 200
    return len(queries)


def test_reading_the_inbox_costs_the_same_for_five_messages_or_ten(api_client, in_app_template):
    five, ten = ContactFactory(user_id="five"), ContactFactory(user_id="ten")
    for n in range(5):
        in_app_entry(five, in_app_template, at=T0 + timedelta(minutes=n))
    for n in range(10):
        in_app_entry(ten, in_app_template, at=T0 + timedelta(minutes=n))
    queries_for(api_client, IN_APP, {"userId": "five", "count": 20})  # the key, cached

    assert queries_for(api_client, IN_APP, {"userId": "five", "count": 20}) == queries_for(
        api_client, IN_APP, {"userId": "ten", "count": 20}
    )


# --- sent messages --------------------------------------------------------------------


@pytest.fixture
def ada(db):
    return ContactFactory(email="ada@example.com", user_id="u-1")


def sent(contact, *, at, template=None, **fields):
    extra = {"template": template} if template else {}
    return MessageFactory(contact=contact, status="sent", sent_at=at, **extra, **fields)


def test_sent_messages_are_listed_newest_first_in_iterables_shape(api_client, ada):
    first = sent(ada, at=T0)
    second = sent(ada, at=T0 + timedelta(hours=1))
    MessageFactory(contact=ada, status="skipped", skip_reason="blocklisted")
    MessageFactory(contact=ada, status="failed", failed_at=T0)
    sent(ada, at=T0 + timedelta(hours=2), is_test=True)
    sent(ContactFactory(), at=T0)

    response = api_client.get(SENT, {"email": "ada@example.com"})

    assert response.status_code == 200
    assert response.json() == {
        "messages": [
            {
                "messageId": str(second.pk),
                "campaignId": second.template_id,
                "templateId": second.template_id,
                "createdAt": "2026-03-01 13:00:00 +00:00",
            },
            {
                "messageId": str(first.pk),
                "campaignId": first.template_id,
                "templateId": first.template_id,
                "createdAt": "2026-03-01 12:00:00 +00:00",
            },
        ]
    }


def test_sent_messages_default_to_ten_and_take_a_limit(api_client, ada):
    messages = [sent(ada, at=T0 + timedelta(minutes=n)) for n in range(12)]

    default = api_client.get(SENT, {"userId": "u-1"}).json()["messages"]
    limited = api_client.get(SENT, {"userId": "u-1", "limit": 3}).json()["messages"]

    assert [m["messageId"] for m in default] == [str(m.pk) for m in messages[::-1][:10]]
    assert [m["messageId"] for m in limited] == [str(m.pk) for m in messages[::-1][:3]]


def test_sent_messages_filter_by_template_medium_and_time(api_client, ada):
    welcome = sent(ada, at=T0).template
    receipt = sent(ada, at=T0 + timedelta(days=1)).template
    sent(ada, at=T0 + timedelta(days=2), template=welcome)
    sms_template = medium_template("sms", text_body="Hi")
    sms = medium_message(sms_template, ada, status="sent", sent_at=T0 + timedelta(days=3))

    def ids(**query):
        response = api_client.get(SENT, {"email": "ada@example.com", **query})
        assert response.status_code == 200, response.json()
        return [(m["templateId"], m["createdAt"][:10]) for m in response.json()["messages"]]

    assert ids(campaignIds=[welcome.pk]) == [(welcome.pk, "2026-03-03"), (welcome.pk, "2026-03-01")]
    assert ids(campaignIds=[welcome.pk, sms_template.pk]) == [
        (sms_template.pk, "2026-03-04"),
        (welcome.pk, "2026-03-03"),
        (welcome.pk, "2026-03-01"),
    ]
    assert ids(campaignId=receipt.pk) == [(receipt.pk, "2026-03-02")]
    assert ids(messageMedium="SMS") == [(sms.template_id, "2026-03-04")]
    assert ids(messageMedium="Push") == []
    # Iterable's time format, and ISO 8601; both ends included.
    assert ids(startDateTime="2026-03-02 12:00:00 +00:00", endDateTime="2026-03-03T12:00:00Z") == [
        (welcome.pk, "2026-03-03"),
        (receipt.pk, "2026-03-02"),
    ]
    # A "+" sent unencoded in a query string arrives as a space.
    assert ids(startDateTime="2026-03-03 13:00:00  01:00") == [
        (sms_template.pk, "2026-03-04"),
        (welcome.pk, "2026-03-03"),
    ]


def test_an_unknown_user_has_no_sent_messages(api_client):
    response = api_client.get(SENT, {"userId": "nobody"})

    assert response.status_code == 200
    assert response.json() == {"messages": []}


def test_a_client_side_key_may_not_read_sent_messages(ada):
    sent(ada, at=T0)

    response = client_key_client().get(SENT, {"email": "ada@example.com"})

    assert (response.status_code, response.json()["code"]) == (403, "Forbidden")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({}, "BadParams"),
        ({"email": "ada"}, "InvalidEmailAddressError"),
        ({"email": "ada@example.com", "limit": 0}, "BadParams"),
        ({"email": "ada@example.com", "limit": 1001}, "BadParams"),
        ({"email": "ada@example.com", "campaignIds": ["x"]}, "BadParams"),
        ({"email": "ada@example.com", "startDateTime": "yesterday"}, "BadParams"),
        ({"email": "ada@example.com", "messageMedium": "Fax"}, "BadParams"),
        (
            {
                "email": "ada@example.com",
                "startDateTime": "2026-03-02 00:00:00",
                "endDateTime": "2026-03-01 00:00:00",
            },
            "BadParams",
        ),
    ],
)
def test_a_malformed_sent_messages_query_is_a_400(api_client, query, code):
    response = api_client.get(SENT, query)

    assert response.status_code == 400
    body = response.json()
    assert (body["code"], set(body)) == (code, {"msg", "code", "params"})


def test_listing_sent_messages_costs_the_same_for_five_or_ten(api_client):
    five, ten = ContactFactory(user_id="five"), ContactFactory(user_id="ten")
    for n in range(5):
        sent(five, at=T0 + timedelta(minutes=n))
    for n in range(10):
        sent(ten, at=T0 + timedelta(minutes=n))
    queries_for(api_client, SENT, {"userId": "five", "limit": 20})  # the key, cached

    assert queries_for(api_client, SENT, {"userId": "five", "limit": 20}) == queries_for(
        api_client, SENT, {"userId": "ten", "limit": 20}
    )


@pytest.mark.postgresql(reason="PostgreSQL's query plan")
def test_the_sent_messages_query_walks_the_contact_and_sent_at_index(ada):
    from messaging.selectors import sent_messages

    first = sent(ada, at=T0)
    # A long history (the case the index is for) among others', and the
    # statistics to tell: on a table of one row the planner's indexes tie.
    fields = {
        f.attname: getattr(first, f.attname)
        for f in Message._meta.concrete_fields
        if not f.primary_key
    }
    contacts = [ada] * 1000 + ContactFactory.create_batch(20) * 10
    Message.objects.bulk_create(
        Message(**{**fields, "contact_id": contact.pk, "idempotency_key": f"history-{n}",
                   "sent_at": T0 - timedelta(minutes=n)})
        for n, contact in enumerate(contacts)
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE messaging_message")
    with CaptureQueriesContext(connection) as queries:
        sent_messages(contact=ada, limit=10)
    (query,) = queries.captured_queries
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN " + query["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET enable_seqscan = on")

    assert "message_contact_sent" in plan
