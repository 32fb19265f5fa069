"""POST /api/users/updateSubscriptions: the fields given replace what is stored,
through the consent ledger, and bad input writes nothing."""

import pytest

from contacts.models import Contact, ListMembership
from subscriptions.models import Channel, ConsentRecord, MessageType, Subscription
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    ContactListFactory,
    ListMembershipFactory,
    MessageTypeFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db

URL = "/api/users/updateSubscriptions"
SUBSCRIBED = Subscription.Status.SUBSCRIBED
UNSUBSCRIBED = Subscription.Status.UNSUBSCRIBED
PENDING = Subscription.Status.PENDING


@pytest.fixture
def ada():
    return ContactFactory(email="ada@example.com", user_id="ada-1")


@pytest.fixture
def email():
    return ChannelFactory(name="Marketing email")


@pytest.fixture
def sms():
    return ChannelFactory(name="Texts", medium=Channel.Medium.SMS)


@pytest.fixture
def news(email):
    return MessageTypeFactory(channel=email, name="News")


@pytest.fixture
def tips(email):
    return MessageTypeFactory(channel=email, name="Tips", policy=MessageType.Policy.OPT_IN)


def state(contact):
    """{(scope, id): status} as stored."""
    return {
        ("channel", row.channel_id) if row.channel_id else ("type", row.message_type_id): row.status
        for row in Subscription.objects.filter(contact=contact)
    }


def test_the_fields_given_replace_the_stored_state_with_a_ledger_entry_each(
    api_client, ada, email, sms, news, tips
):
    members = ContactListFactory(name="Members")

    response = api_client.post(
        URL,
        {
            "email": "ada@example.com",
            "emailListIds": [members.pk],
            "unsubscribedChannelIds": [sms.pk],
            "unsubscribedMessageTypeIds": [news.pk],
            "subscribedMessageTypeIds": [tips.pk],
            "campaignId": 12,
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.json() == {"msg": "Subscriptions updated.", "code": "Success", "params": None}
    assert state(ada) == {
        ("channel", sms.pk): UNSUBSCRIBED,
        ("type", news.pk): UNSUBSCRIBED,
        ("type", tips.pk): SUBSCRIBED,
    }
    membership = ListMembership.objects.get(contact=ada)
    assert (membership.contact_list, membership.source) == (members, "api")
    records = ConsentRecord.objects.filter(contact=ada)
    assert {(r.channel_id, r.message_type_id, r.action) for r in records} == {
        (sms.pk, None, "unsubscribed"),
        (None, news.pk, "unsubscribed"),
        (None, tips.pk, "subscribed"),
    }
    assert records.count() == 3
    assert {(r.source, r.note) for r in records} == {
        ("api", "API key test integration, campaign 12")
    }


def test_a_field_left_out_is_left_as_it_is(api_client, ada, email, sms, news, tips):
    SubscriptionFactory(contact=ada, channel=sms, message_type=None, status=UNSUBSCRIBED)
    SubscriptionFactory(contact=ada, message_type=tips)
    members = ContactListFactory(name="Members")
    ListMembershipFactory(contact=ada, contact_list=members)

    response = api_client.post(
        URL, {"userId": "ada-1", "unsubscribedMessageTypeIds": [news.pk]}, format="json"
    )

    assert response.status_code == 200
    assert state(ada) == {
        ("channel", sms.pk): UNSUBSCRIBED,
        ("type", tips.pk): SUBSCRIBED,
        ("type", news.pk): UNSUBSCRIBED,
    }
    assert ListMembership.objects.filter(contact=ada, contact_list=members).exists()


def test_empty_lists_resubscribe_every_channel_and_type_and_leave_every_list(
    api_client, ada, email, sms, news, tips
):
    SubscriptionFactory(contact=ada, channel=sms, message_type=None, status=UNSUBSCRIBED)
    SubscriptionFactory(contact=ada, message_type=news, status=UNSUBSCRIBED)
    SubscriptionFactory(contact=ada, message_type=tips)
    ListMembershipFactory(contact=ada, contact_list=ContactListFactory())
    body = {
        "email": "ada@example.com",
        "emailListIds": [],
        "unsubscribedChannelIds": [],
        "unsubscribedMessageTypeIds": [],
        "subscribedMessageTypeIds": [],
    }

    response = api_client.post(URL, body, format="json")

    assert response.status_code == 200
    assert state(ada) == {
        ("channel", sms.pk): SUBSCRIBED,
        ("type", news.pk): SUBSCRIBED,
        # an opt-in type left out of subscribedMessageTypeIds is unsubscribed
        ("type", tips.pk): UNSUBSCRIBED,
    }
    assert not ListMembership.objects.filter(contact=ada).exists()
    assert ConsentRecord.objects.filter(contact=ada).count() == 3


def test_posting_back_what_get_answers_changes_nothing(api_client, ada, email, sms, news, tips):
    digest = MessageTypeFactory(channel=email, policy=MessageType.Policy.DOUBLE_OPT_IN)
    SubscriptionFactory(contact=ada, channel=sms, message_type=None, status=UNSUBSCRIBED)
    SubscriptionFactory(contact=ada, message_type=news, status=UNSUBSCRIBED)
    SubscriptionFactory(contact=ada, message_type=tips)
    SubscriptionFactory(contact=ada, message_type=digest, status=PENDING)
    ListMembershipFactory(contact=ada, contact_list=ContactListFactory())
    before = state(ada)
    fields = api_client.get("/api/users/ada@example.com").json()["user"]["dataFields"]
    body = {
        key: fields[key]
        for key in ("email", "emailListIds", "unsubscribedChannelIds",
                    "unsubscribedMessageTypeIds", "subscribedMessageTypeIds")
    }  # fmt: skip

    response = api_client.post(URL, body, format="json")

    assert response.status_code == 200
    assert state(ada) == before
    assert not ConsentRecord.objects.exists()
    assert ListMembership.objects.filter(contact=ada).count() == 1


def test_an_unknown_user_is_created_with_the_subscriptions_given(api_client, news):
    response = api_client.post(
        URL, {"email": "New@Example.com", "unsubscribedMessageTypeIds": [news.pk]}, format="json"
    )

    assert response.status_code == 200
    contact = Contact.objects.get()
    assert contact.email == "new@example.com"
    assert state(contact) == {("type", news.pk): UNSUBSCRIBED}


def test_unknown_ids_are_ignored_unless_validate_ids(api_client, ada, news):
    body = {"email": "ada@example.com", "unsubscribedMessageTypeIds": [news.pk, 999999],
            "emailListIds": [888888]}  # fmt: skip

    ignored = api_client.post(URL, body, format="json")

    assert ignored.status_code == 200
    assert state(ada) == {("type", news.pk): UNSUBSCRIBED}
    assert not ListMembership.objects.exists()


def test_unknown_ids_under_validate_ids_are_a_400_that_writes_nothing(api_client, news):
    body = {"email": "new@example.com", "unsubscribedMessageTypeIds": [news.pk, 999999],
            "emailListIds": [888888], "validateIds": True}  # fmt: skip

    response = api_client.post(URL, body, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "msg": "Unknown ids: list 888888, message type 999999.",
        "code": "BadParams",
        "params": None,
    }
    assert not Contact.objects.exists()
    assert not Subscription.objects.exists()
    assert not ConsentRecord.objects.exists()


def test_a_transactional_channel_cannot_be_unsubscribed_from(api_client, ada, email):
    receipts = ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)

    response = api_client.post(
        URL,
        {"email": "ada@example.com", "unsubscribedChannelIds": [email.pk, receipts.pk]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert "transactional" in response.json()["msg"]
    assert not Subscription.objects.exists()
    assert not ConsentRecord.objects.exists()


def test_subscribing_to_a_type_of_an_unsubscribed_channel_is_refused_unless_asked(
    api_client, ada, email, tips
):
    SubscriptionFactory(contact=ada, channel=email, message_type=None, status=UNSUBSCRIBED)
    body = {"email": "ada@example.com", "subscribedMessageTypeIds": [tips.pk]}

    refused = api_client.post(URL, body, format="json")
    allowed = api_client.post(URL, {**body, "validateChannelAlignment": False}, format="json")

    assert (refused.status_code, refused.json()["code"]) == (400, "BadParams")
    assert "validateChannelAlignment" in refused.json()["msg"]
    assert allowed.status_code == 200
    assert state(ada)[("type", tips.pk)] == SUBSCRIBED
    assert ConsentRecord.objects.count() == 1


def test_the_same_type_subscribed_and_unsubscribed_is_a_400(api_client, ada, tips):
    body = {"email": "ada@example.com", "subscribedMessageTypeIds": [tips.pk],
            "unsubscribedMessageTypeIds": [tips.pk]}  # fmt: skip

    response = api_client.post(URL, body, format="json")

    assert (response.status_code, response.json()["code"]) == (400, "BadParams")
    assert not Subscription.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": "not-an-email", "emailListIds": []}, "InvalidEmailAddressError"),
        ({"emailListIds": []}, "BadParams"),
        ({"email": "new@example.com", "emailListIds": ["x"]}, "BadParams"),
        ({"email": "new@example.com", "emailListIds": [2**64]}, "BadParams"),
    ],
)
def test_bad_input_is_a_400_that_writes_nothing(api_client, body, code):
    response = api_client.post(URL, body, format="json")

    assert (response.status_code, response.json()["code"]) == (400, code)
    assert not Contact.objects.exists()


def test_a_user_id_that_belongs_to_another_user_is_a_409(api_client, ada, news):
    body = {"email": "bo@example.com", "userId": "ada-1", "unsubscribedMessageTypeIds": [news.pk]}

    response = api_client.post(URL, body, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "BadParams")
    assert list(Contact.objects.all()) == [ada]
    assert not Subscription.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_double_opt_in_type_awaits_confirmation_and_the_email_is_sent(
    api_client, smtp_server, rq_queue, run_worker
):
    digest = MessageTypeFactory(name="Weekly digest", policy=MessageType.Policy.DOUBLE_OPT_IN)
    body = {"email": "ada@example.com", "subscribedMessageTypeIds": [digest.pk]}

    response = api_client.post(URL, body, format="json")
    again = api_client.post(URL, body, format="json")
    run_worker()

    assert (response.status_code, again.status_code) == (200, 200)
    contact = Contact.objects.get()
    assert state(contact) == {("type", digest.pk): PENDING}
    assert ConsentRecord.objects.get().action == "confirmation_requested"
    (confirmation,) = smtp_server.messages
    assert confirmation["To"] == "ada@example.com"
    assert "Weekly digest" in confirmation["Subject"]
