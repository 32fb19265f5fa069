"""/api/users/update, updateEmail, getFields, registerDeviceToken and
registerBrowserToken: Iterable's contract and what each writes."""

import json

import pytest
from rest_framework.test import APIClient

from contacts.models import ApiKey, Contact, DeviceToken
from contacts.services import api_key_create
from contacts.services.users import user_fields
from tests.factories import ContactFactory, DeviceTokenFactory, EventFactory

pytestmark = pytest.mark.django_db

UPDATE = "/api/users/update"
UPDATE_EMAIL = "/api/users/updateEmail"
GET_FIELDS = "/api/users/getFields"
REGISTER_DEVICE = "/api/users/registerDeviceToken"
REGISTER_BROWSER = "/api/users/registerBrowserToken"

SUCCESS = {"msg": "User updated.", "code": "Success", "params": None}


@pytest.fixture
def client_key_client():
    _, raw = api_key_create(name="iOS app", scope=ApiKey.Scope.CLIENT)
    client = APIClient()
    client.credentials(HTTP_API_KEY=raw)
    return client


def snapshot():
    return list(
        Contact.objects.order_by("pk").values_list(
            "email", "user_id", "phone", "timezone", "locale", "attributes"
        )
    )


# POST /api/users/update


def test_update_creates_an_unknown_user_by_email(api_client):
    response = api_client.post(
        UPDATE,
        {"email": "Nia@Example.com", "userId": "u-1", "dataFields": {"plan": "pro"}},
        format="json",
    )

    assert (response.status_code, response.json()) == (200, SUCCESS)
    contact = Contact.objects.get()
    assert (contact.email, contact.user_id, contact.attributes) == (
        "nia@example.com",
        "u-1",
        {"plan": "pro"},
    )


def test_update_merges_data_fields_at_the_top_level_and_replaces_objects(api_client):
    ContactFactory(
        email="nia@example.com",
        attributes={"plan": "free", "age": 30, "settings": {"mobile": True, "theme": "dark"}},
    )

    response = api_client.post(
        UPDATE,
        {"email": "nia@example.com", "dataFields": {"plan": "pro", "settings": {"email": True}}},
        format="json",
    )

    assert response.json() == SUCCESS
    assert Contact.objects.get().attributes == {
        "plan": "pro",
        "age": 30,
        "settings": {"email": True},
    }


def test_merge_nested_objects_merges_objects_deeply(api_client):
    ContactFactory(
        email="nia@example.com",
        attributes={"settings": {"mobile": True, "push": {"sound": "on", "badge": 1}}},
    )

    api_client.post(
        UPDATE,
        {
            "email": "nia@example.com",
            "mergeNestedObjects": True,
            "dataFields": {"settings": {"email": True, "push": {"badge": 2}}},
        },
        format="json",
    )

    assert Contact.objects.get().attributes == {
        "settings": {"mobile": True, "email": True, "push": {"sound": "on", "badge": 2}}
    }


def test_reserved_fields_set_the_contact_columns(api_client, settings):
    settings.WAYMARK_DEFAULT_PHONE_REGION = ""

    api_client.post(
        UPDATE,
        {
            "email": "nia@example.com",
            "dataFields": {
                "phoneNumber": "+1 415-555-0123",
                "timeZone": "Europe/Paris",
                "locale": "fr-FR",
                "plan": "pro",
            },
        },
        format="json",
    )

    contact = Contact.objects.get()
    assert (contact.phone, contact.timezone, contact.locale) == (
        "+14155550123",
        "Europe/Paris",
        "fr-FR",
    )
    assert contact.attributes == {"plan": "pro"}


def test_update_by_user_id_only_creates_then_finds_the_user(api_client):
    api_client.post(UPDATE, {"userId": "u-1", "dataFields": {"a": 1}}, format="json")
    response = api_client.post(UPDATE, {"userId": "u-1", "dataFields": {"b": 2}}, format="json")

    assert response.json() == SUCCESS
    contact = Contact.objects.get()
    assert (contact.email, contact.user_id, contact.attributes) == (None, "u-1", {"a": 1, "b": 2})


def test_email_and_a_free_user_id_give_the_known_user_that_user_id(api_client):
    ContactFactory(email="nia@example.com", user_id=None)

    api_client.post(UPDATE, {"email": "nia@example.com", "userId": "u-1"}, format="json")

    assert list(Contact.objects.values_list("email", "user_id")) == [("nia@example.com", "u-1")]


def test_a_known_user_id_without_email_gets_the_email(api_client):
    ContactFactory(email=None, user_id="u-1")

    api_client.post(UPDATE, {"email": "nia@example.com", "userId": "u-1"}, format="json")

    assert list(Contact.objects.values_list("email", "user_id")) == [("nia@example.com", "u-1")]


def test_email_and_user_id_of_two_different_users_is_a_409_that_writes_nothing(api_client):
    ContactFactory(email="nia@example.com", user_id="u-1")
    ContactFactory(email="ada@example.com", user_id="u-2")
    before = snapshot()

    response = api_client.post(
        UPDATE,
        {"email": "nia@example.com", "userId": "u-2", "dataFields": {"plan": "pro"}},
        format="json",
    )

    assert response.status_code == 409
    assert response.json() == {
        "msg": "The email and the userId belong to two different users.",
        "code": "BadParams",
        "params": {"email": "nia@example.com", "userId": "u-2"},
    }
    assert snapshot() == before


def test_a_user_id_of_another_user_is_a_409_that_writes_nothing(api_client):
    ContactFactory(email="ada@example.com", user_id="u-2")
    before = snapshot()

    response = api_client.post(
        UPDATE, {"email": "nia@example.com", "userId": "u-2", "dataFields": {"a": 1}}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "BadParams"
    assert "userId belongs to another user" in response.json()["msg"]
    assert snapshot() == before


def test_prefer_user_id_finds_by_user_id_and_moves_it_to_the_email(api_client):
    ContactFactory(email="old@example.com", user_id="u-2", attributes={})

    response = api_client.post(
        UPDATE,
        {"email": "new@example.com", "userId": "u-2", "preferUserId": True, "dataFields": {"a": 1}},
        format="json",
    )

    assert response.json() == SUCCESS
    assert list(Contact.objects.values_list("email", "user_id", "attributes")) == [
        ("new@example.com", "u-2", {"a": 1})
    ]


def test_prefer_user_id_creates_an_unknown_user_id(api_client):
    response = api_client.post(
        UPDATE, {"email": "nia@example.com", "userId": "u-9", "preferUserId": True}, format="json"
    )

    assert response.json() == SUCCESS
    assert list(Contact.objects.values_list("email", "user_id")) == [("nia@example.com", "u-9")]


def test_prefer_user_id_with_the_email_of_a_user_with_another_user_id_is_a_409(api_client):
    ContactFactory(email="nia@example.com", user_id="u-1")
    before = snapshot()

    response = api_client.post(
        UPDATE, {"email": "nia@example.com", "userId": "u-9", "preferUserId": True}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (409, "BadParams")
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"dataFields": {"a": 1}}, "BadParams"),
        ({"email": "not-an-email"}, "InvalidEmailAddressError"),
        ({"email": "nia@example.com", "dataFields": [1]}, "BadParams"),
        ({"email": "nia@example.com", "mergeNestedObjects": "perhaps"}, "BadParams"),
        ({"userId": "x" * 256}, "BadParams"),
        ({"email": "nia@example.com", "dataFields": {"phoneNumber": "12"}}, "BadParams"),
        ({"email": "nia@example.com", "dataFields": {"phoneNumber": 14155550123}}, "BadParams"),
        ({"email": "nia@example.com", "dataFields": {"timeZone": "Mars/Olympus"}}, "BadParams"),
        ({"email": "nia@example.com", "dataFields": {"locale": "x" * 36}}, "BadParams"),
    ],
)
def test_bad_input_is_a_400_that_writes_nothing(api_client, body, code):
    response = api_client.post(UPDATE, body, format="json")

    assert response.status_code == 400
    payload = response.json()
    assert (set(payload), payload["code"]) == ({"msg", "code", "params"}, code)
    assert payload["msg"]
    assert not Contact.objects.exists()


UNSTORABLE = {
    "nul in a key": b'{"email": "nia@example.com", "dataFields": {"a\\u0000": 1}}',
    "nul in a value": b'{"email": "nia@example.com", "dataFields": {"a": "\\u0000"}}',
    "lone surrogate in a key": b'{"email": "nia@example.com", "dataFields": {"\\udc00": 1}}',
    "1e400": b'{"email": "nia@example.com", "dataFields": {"a": 1e400}}',
    "an integer of 5000 digits": b'{"email": "nia@example.com", "dataFields": {"a": '
    + b"9" * 5000
    + b"}}",
}


@pytest.mark.parametrize("body", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_data_postgresql_cannot_store_is_a_400_that_writes_nothing(api_client, body):
    ContactFactory(email="nia@example.com", attributes={"plan": "free"})
    before = snapshot()

    response = api_client.post(UPDATE, body, content_type="application/json")

    assert (response.status_code, response.json()["code"]) == (400, "BadJsonBody")
    assert snapshot() == before


def test_a_client_side_key_may_update_a_user(client_key_client):
    response = client_key_client.post(UPDATE, {"email": "nia@example.com"}, format="json")

    assert response.json() == SUCCESS
    assert Contact.objects.filter(email="nia@example.com").exists()


def test_update_needs_a_key():
    response = APIClient().post(UPDATE, {"email": "nia@example.com"}, format="json")

    assert (response.status_code, response.json()["code"]) == (401, "BadApiKey")
    assert not Contact.objects.exists()


# POST /api/users/updateEmail


def test_update_email_moves_the_user_and_keeps_its_history(api_client):
    contact = ContactFactory(email="old@example.com", user_id="u-1")
    EventFactory(contact=contact)

    response = api_client.post(
        UPDATE_EMAIL, {"currentEmail": "OLD@example.com", "newEmail": "New@Example.com"}, "json"
    )

    assert response.json() == {"msg": "Email updated.", "code": "Success", "params": None}
    contact.refresh_from_db()
    assert contact.email == "new@example.com"
    assert contact.events.count() == 1
    assert Contact.objects.count() == 1


def test_update_email_finds_the_user_by_current_user_id(api_client):
    contact = ContactFactory(email="old@example.com", user_id="u-1")

    response = api_client.post(
        UPDATE_EMAIL, {"currentUserId": "u-1", "newEmail": "new@example.com"}, format="json"
    )

    assert response.status_code == 200
    contact.refresh_from_db()
    assert contact.email == "new@example.com"


def test_current_email_wins_over_current_user_id(api_client):
    by_email = ContactFactory(email="old@example.com", user_id="u-1")
    by_user_id = ContactFactory(email="other@example.com", user_id="u-2")

    api_client.post(
        UPDATE_EMAIL,
        {"currentEmail": "old@example.com", "currentUserId": "u-2", "newEmail": "new@example.com"},
        format="json",
    )

    by_email.refresh_from_db()
    by_user_id.refresh_from_db()
    assert (by_email.email, by_user_id.email) == ("new@example.com", "other@example.com")


def test_a_new_email_another_user_has_is_refused(api_client):
    ContactFactory(email="old@example.com")
    ContactFactory(email="taken@example.com")
    before = snapshot()

    response = api_client.post(
        UPDATE_EMAIL, {"currentEmail": "old@example.com", "newEmail": "taken@example.com"}, "json"
    )

    assert response.status_code == 409
    assert response.json() == {
        "msg": "Another user already has that newEmail.",
        "code": "EmailAlreadyExists",
        "params": None,
    }
    assert snapshot() == before


def test_update_email_of_an_unknown_user_is_a_400_that_creates_nobody(api_client):
    response = api_client.post(
        UPDATE_EMAIL, {"currentEmail": "nobody@example.com", "newEmail": "new@example.com"}, "json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "msg": "No user has that currentEmail.",
        "code": "UnknownEmailError",
        "params": None,
    }
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"newEmail": "new@example.com"}, "BadParams"),
        ({"currentEmail": "old@example.com"}, "BadParams"),
        ({"currentEmail": "old@example.com", "newEmail": "nope"}, "BadParams"),
    ],
)
def test_update_email_with_bad_input_is_a_400_that_writes_nothing(api_client, body, code):
    ContactFactory(email="old@example.com")

    response = api_client.post(UPDATE_EMAIL, body, format="json")

    assert (response.status_code, response.json()["code"]) == (400, code)
    assert list(Contact.objects.values_list("email", flat=True)) == ["old@example.com"]


def test_a_client_side_key_may_not_change_an_email(client_key_client):
    ContactFactory(email="old@example.com")

    response = client_key_client.post(
        UPDATE_EMAIL, {"currentEmail": "old@example.com", "newEmail": "new@example.com"}, "json"
    )

    assert (response.status_code, response.json()["code"]) == (403, "Forbidden")
    assert Contact.objects.get().email == "old@example.com"


# GET /api/users/getFields


def test_get_fields_lists_profile_fields_and_data_fields_with_their_types(api_client):
    ContactFactory(attributes={"plan": "pro", "age": 30, "score": 1.5, "vip": True})
    ContactFactory(attributes={"plan": "free", "settings": {"a": 1}, "tags": ["x"], "gone": None})

    response = api_client.get(GET_FIELDS)

    assert response.status_code == 200
    fields = response.json()["fields"]
    assert {name: fields[name] for name in ("plan", "age", "score", "vip", "settings", "tags")} == {
        "plan": "string",
        "age": "long",
        "score": "double",
        "vip": "boolean",
        "settings": "object",
        "tags": "array",
    }
    assert "gone" not in fields
    assert (fields["email"], fields["userId"], fields["phoneNumber"]) == ("string",) * 3


def test_get_fields_reads_a_bounded_sample_of_the_newest_contacts():
    ContactFactory(attributes={"old_field": 1})
    for _ in range(3):
        ContactFactory(attributes={"new_field": "x"})

    fields = user_fields(sample=3)

    assert "new_field" in fields
    assert "old_field" not in fields


def test_get_fields_takes_the_most_common_type_of_a_field(api_client):
    ContactFactory(attributes={"age": 30})
    ContactFactory(attributes={"age": 31})
    ContactFactory(attributes={"age": "thirty"})

    assert api_client.get(GET_FIELDS).json()["fields"]["age"] == "long"


# POST /api/users/registerDeviceToken


@pytest.mark.parametrize(("platform", "stored"), [("APNS", "ios"), ("GCM", "android")])
def test_register_device_token_creates_the_user_and_the_device(api_client, platform, stored):
    response = api_client.post(
        REGISTER_DEVICE,
        {
            "email": "nia@example.com",
            "device": {"token": "tok-1", "platform": platform, "applicationName": "com.acme"},
        },
        format="json",
    )

    assert response.json() == {"msg": "Device registered.", "code": "Success", "params": None}
    device = DeviceToken.objects.get()
    assert (device.contact.email, device.platform, device.token, device.app_id) == (
        "nia@example.com",
        stored,
        "tok-1",
        "com.acme",
    )


def test_a_client_side_key_may_register_a_device_and_it_moves_to_the_new_user(
    client_key_client,
):
    DeviceTokenFactory(token="shared", contact=ContactFactory(email="ada@example.com"))

    response = client_key_client.post(
        REGISTER_DEVICE,
        {
            "userId": "u-1",
            "device": {"token": "shared", "platform": "APNS_SANDBOX", "applicationName": "a"},
        },
        format="json",
    )

    assert response.status_code == 200
    device = DeviceToken.objects.get()
    assert (device.contact.user_id, device.platform) == ("u-1", "ios")


@pytest.mark.parametrize(
    "device",
    [
        {"token": "tok", "platform": "WINDOWS", "applicationName": "a"},
        {"token": "has space", "platform": "GCM", "applicationName": "a"},
        {"platform": "GCM", "applicationName": "a"},
    ],
)
def test_a_bad_device_is_a_400_that_creates_no_user(api_client, device):
    response = api_client.post(
        REGISTER_DEVICE, {"email": "nia@example.com", "device": device}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (400, "BadParams")
    assert not Contact.objects.exists()
    assert not DeviceToken.objects.exists()


# POST /api/users/registerBrowserToken

SUBSCRIPTION = {
    "endpoint": "https://push.example.net/v1/abc",
    "expirationTime": None,
    "keys": {"p256dh": "BPublicKey", "auth": "secret"},
}


def test_register_browser_token_stores_the_push_subscription(client_key_client):
    response = client_key_client.post(
        REGISTER_BROWSER,
        {"email": "nia@example.com", "browserToken": json.dumps(SUBSCRIPTION)},
        format="json",
    )

    assert response.json() == {"msg": "Browser registered.", "code": "Success", "params": None}
    device = DeviceToken.objects.get()
    assert (device.contact.email, device.platform, device.token) == (
        "nia@example.com",
        "web",
        "https://push.example.net/v1/abc",
    )
    assert device.subscription["keys"] == {"p256dh": "BPublicKey", "auth": "secret"}


@pytest.mark.parametrize(
    "token",
    ["an-fcm-token", json.dumps({"endpoint": "https://push.example.net/v1/abc"}), "[1]"],
)
def test_a_browser_token_that_is_not_a_push_subscription_is_a_400(api_client, token):
    response = api_client.post(
        REGISTER_BROWSER, {"email": "nia@example.com", "browserToken": token}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (400, "BadParams")
    assert not Contact.objects.exists()
    assert not DeviceToken.objects.exists()


def test_registering_for_a_conflicting_identity_is_a_409(api_client):
    ContactFactory(email="nia@example.com", user_id="u-1")
    ContactFactory(email="ada@example.com", user_id="u-2")

    response = api_client.post(
        REGISTER_BROWSER,
        {"email": "nia@example.com", "userId": "u-2", "browserToken": json.dumps(SUBSCRIPTION)},
        format="json",
    )

    assert (response.status_code, response.json()["code"]) == (409, "BadParams")
    assert not DeviceToken.objects.exists()
