"""GET /api/users/{email}, /api/users/getByEmail and /api/users/byUserId/{userId}:
Iterable's user object, with the subscription state read from Waymark's consent data."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from subscriptions.models import MessageType, Subscription
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    ContactListFactory,
    ListMembershipFactory,
    MessageTypeFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db

UNSUBSCRIBED = Subscription.Status.UNSUBSCRIBED
PENDING = Subscription.Status.PENDING


@pytest.fixture
def ada():
    with time_machine.travel(datetime(2024, 5, 1, 9, 30, tzinfo=UTC), tick=False):
        return ContactFactory(
            email="ada@example.com", user_id="ada-1", attributes={"firstName": "Ada"}
        )


def test_get_by_email_answers_the_profile_and_its_subscription_state(api_client, ada):
    channel = ChannelFactory(name="Marketing email")
    sms = ChannelFactory(name="Texts", medium="sms")
    news = MessageTypeFactory(channel=channel, name="News")
    tips = MessageTypeFactory(channel=channel, name="Tips", policy=MessageType.Policy.OPT_IN)
    digest = MessageTypeFactory(
        channel=channel, name="Digest", policy=MessageType.Policy.DOUBLE_OPT_IN
    )
    weekly = MessageTypeFactory(
        channel=channel, name="Weekly", policy=MessageType.Policy.DOUBLE_OPT_IN
    )
    SubscriptionFactory(contact=ada, message_type=news, status=UNSUBSCRIBED)
    SubscriptionFactory(contact=ada, message_type=tips)
    SubscriptionFactory(contact=ada, message_type=digest)
    SubscriptionFactory(contact=ada, message_type=weekly, status=PENDING)
    SubscriptionFactory(contact=ada, message_type=None, channel=sms, status=UNSUBSCRIBED)
    members = ContactListFactory(name="Members")
    ListMembershipFactory(contact=ada, contact_list=members)
    ContactListFactory(name="Others")

    response = api_client.get("/api/users/ada@example.com")

    assert response.status_code == 200
    assert response.json() == {
        "user": {
            "email": "ada@example.com",
            "userId": "ada-1",
            "dataFields": {
                "firstName": "Ada",
                "email": "ada@example.com",
                "userId": "ada-1",
                "signupDate": "2024-05-01 09:30:00 +00:00",
                "profileUpdatedAt": "2024-05-01 09:30:00 +00:00",
                "emailListIds": [members.pk],
                "unsubscribedChannelIds": [sms.pk],
                "unsubscribedMessageTypeIds": [news.pk],
                # the double-opt-in type awaiting confirmation is not subscribed yet
                "subscribedMessageTypeIds": sorted([tips.pk, digest.pk]),
            },
        }
    }


def test_the_three_paths_answer_the_same_user(api_client, ada):
    by_path = api_client.get("/api/users/ADA@example.com").json()
    by_query = api_client.get("/api/users/getByEmail", {"email": "ada@example.com"}).json()
    by_user_id = api_client.get("/api/users/byUserId/ada-1").json()

    assert by_path == by_query == by_user_id
    assert by_path["user"]["dataFields"]["emailListIds"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/users/nobody@example.com",
        "/api/users/getByEmail?email=nobody@example.com",
        "/api/users/byUserId/nobody",
    ],
)
def test_an_unknown_user_is_an_empty_object_with_a_200(api_client, ada, path):
    response = api_client.get(path)

    assert (response.status_code, response.json()) == (200, {})


def test_get_by_email_without_an_email_is_a_400(api_client):
    response = api_client.get("/api/users/getByEmail")

    assert response.status_code == 400
    assert response.json()["code"] == "InvalidEmailAddressError"


def test_a_path_without_an_at_sign_is_not_a_user(api_client, ada):
    response = api_client.get("/api/users/ada-1")

    assert (response.status_code, response.json()["code"]) == (404, "NotFound")


def test_a_profile_field_wins_over_an_attribute_of_the_same_name(api_client):
    ContactFactory(email="bo@example.com", attributes={"emailListIds": "mine", "plan": "pro"})

    fields = api_client.get("/api/users/bo@example.com").json()["user"]["dataFields"]

    assert (fields["emailListIds"], fields["plan"]) == ([], "pro")


def test_reading_a_user_takes_as_many_queries_however_many_subscriptions(api_client, ada):
    def subscribe(count):
        for message_type in MessageTypeFactory.create_batch(count):
            SubscriptionFactory(contact=ada, message_type=message_type, status=UNSUBSCRIBED)
        for contact_list in ContactListFactory.create_batch(count):
            ListMembershipFactory(contact=ada, contact_list=contact_list)

    subscribe(2)
    api_client.get("/api/users/ada@example.com")  # the key is looked up once, then cached
    with CaptureQueriesContext(connection) as few:
        api_client.get("/api/users/ada@example.com")
    subscribe(4)

    with CaptureQueriesContext(connection) as more:
        response = api_client.get("/api/users/ada@example.com")

    assert len(response.json()["user"]["dataFields"]["unsubscribedMessageTypeIds"]) == 6
    assert len(more) == len(few)


# --- DELETE /api/users/{email} and /api/users/byUserId/{userId} ---------------------


def test_deleting_a_user_by_email_removes_the_contact_and_what_is_kept_about_them(api_client):
    from contacts.models import Contact, Event
    from messaging.models import Message
    from subscriptions.models import ConsentRecord
    from tests.factories import ConsentRecordFactory, EventFactory, MessageFactory

    nia = ContactFactory(email="nia@example.com")
    EventFactory(contact=nia)
    MessageFactory(contact=nia)
    ConsentRecordFactory(contact=nia)
    other = ContactFactory(email="ada@example.com")
    EventFactory(contact=other)

    response = api_client.delete("/api/users/nia@example.com")

    assert response.status_code == 200
    assert response.json() == {"msg": "The user is deleted.", "code": "Success", "params": None}
    assert list(Contact.objects.values_list("email", flat=True)) == ["ada@example.com"]
    assert list(Event.objects.values_list("contact__email", flat=True)) == ["ada@example.com"]
    assert not Message.objects.exists()
    assert not ConsentRecord.objects.exists()


def test_deleting_a_user_by_user_id_leaves_the_address_free_to_come_back(api_client):
    from contacts.models import Contact

    ContactFactory(email="nia@example.com", user_id="u-7")

    response = api_client.delete("/api/users/byUserId/u-7")
    again = api_client.post(
        "/api/events/track", {"email": "nia@example.com", "eventName": "x"}, format="json"
    )

    assert response.status_code == 200
    assert again.status_code == 200
    assert Contact.objects.get().user_id is None


@pytest.mark.parametrize("path", ["/api/users/nobody@example.com", "/api/users/byUserId/nobody"])
def test_deleting_an_unknown_user_is_a_400_that_deletes_nothing(api_client, path):
    from contacts.models import Contact

    ContactFactory(email="nia@example.com", user_id="u-7")

    response = api_client.delete(path)

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert Contact.objects.count() == 1


def test_a_client_side_key_may_not_delete_users(db):
    from rest_framework.test import APIClient

    from contacts.models import ApiKey, Contact
    from contacts.services import api_key_create

    ContactFactory(email="nia@example.com")
    _, raw = api_key_create(name="app", scope=ApiKey.Scope.CLIENT)
    client = APIClient()
    client.credentials(HTTP_API_KEY=raw)

    response = client.delete("/api/users/nia@example.com")

    assert response.status_code == 403
    assert Contact.objects.count() == 1
