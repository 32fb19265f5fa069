"""What every /api/ path shares: keys, scopes, limits, and Iterable's envelope for every error."""

import logging
from unittest import mock

import pytest
from rest_framework.test import APIClient

from contacts.models import ApiKey, Contact, Event
from contacts.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db

TRACK = "/api/events/track"


def envelope(response):
    body = response.json()
    assert set(body) == {"msg", "code", "params"}
    return body


def test_an_unknown_path_answers_iterables_404_envelope(api_client):
    response = api_client.get("/api/users/nothing-here/really")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert envelope(response)["code"] == "NotFound"


@pytest.mark.parametrize("path", [TRACK, "/api/no/such/path", "/api/"])
def test_a_wrong_or_missing_key_is_a_401_on_every_path(path):
    wrong = APIClient()
    wrong.credentials(HTTP_API_KEY="wm_not-a-key")

    responses = [wrong.post(path, {}, format="json"), APIClient().post(path, {}, format="json")]

    for response in responses:
        assert response.status_code == 401
        assert envelope(response)["code"] == "BadApiKey"


def test_a_revoked_key_is_refused():
    api_key, raw = api_key_create(name="old")
    api_key_revoke(api_key=api_key)
    client = APIClient()
    client.credentials(HTTP_API_KEY=raw)

    response = client.post(TRACK, {"email": "a@example.com", "eventName": "x"}, format="json")

    assert (response.status_code, envelope(response)["code"]) == (401, "BadApiKey")
    assert not Event.objects.exists()


def test_the_key_may_come_as_an_api_key_query_parameter(api_key):
    response = APIClient().post(
        f"{TRACK}?api_key={api_key}", {"email": "a@example.com", "eventName": "x"}, format="json"
    )

    assert response.status_code == 200
    assert Event.objects.count() == 1


def test_a_client_side_key_may_track_events():
    _, raw = api_key_create(name="iOS app", scope=ApiKey.Scope.CLIENT)
    client = APIClient()
    client.credentials(HTTP_API_KEY=raw)

    response = client.post(TRACK, {"email": "a@example.com", "eventName": "x"}, format="json")

    assert response.status_code == 200


def test_a_method_the_endpoint_does_not_take_is_a_json_405(api_client):
    response = api_client.get(TRACK)

    assert response.status_code == 405
    assert envelope(response)["code"] == "GenericError"


def track_body(data_fields: bytes) -> bytes:
    return b'{"email": "a@example.com", "eventName": "x", "dataFields": ' + data_fields + b"}"


BAD_BODIES = {
    "nul in a value": track_body(b'{"a": "x\\u0000y"}'),
    "nul in a key": track_body(b'{"a\\u0000": 1}'),
    "lone surrogate": track_body(b'{"a": "\\ud800"}'),
    "1e400": track_body(b'{"a": 1e400}'),
    "NaN": track_body(b'{"a": NaN}'),
    "2000 levels": track_body(b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b"}"),
    "40 levels": track_body(b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}"),
    "not json": b'{"email": ',
    "not utf-8": b'{"email": "\xff"}',
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_body_that_cannot_be_stored_is_a_400_that_writes_nothing(api_client, body):
    response = api_client.post(TRACK, body, content_type="application/json")

    assert response.status_code == 400
    assert envelope(response)["code"] == "BadJsonBody"
    assert not Contact.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.parametrize("field", ["campaignId", "templateId"])
def test_an_id_beyond_64_bits_is_a_400_that_writes_nothing(api_client, field):
    body = {"email": "a@example.com", "eventName": "x", field: 2**64}

    response = api_client.post(TRACK, body, format="json")

    assert (response.status_code, envelope(response)["code"]) == (400, "BadParams")
    assert not Event.objects.exists()


def test_a_body_over_the_size_limit_is_a_json_413(api_client, settings):
    settings.WAYMARK_API = {**settings.WAYMARK_API, "MAX_BODY_BYTES": 100}
    body = {"email": "a@example.com", "eventName": "x", "dataFields": {"text": "y" * 200}}

    response = api_client.post(TRACK, body, format="json")

    assert response.status_code == 413
    assert envelope(response)["code"] == "GenericError"
    assert not Event.objects.exists()


def test_a_key_over_its_rate_limit_gets_a_429(api_client, settings):
    settings.WAYMARK_API = {**settings.WAYMARK_API, "RATE_PER_MINUTE": {"server": 3, "client": 3}}
    body = {"email": "a@example.com", "eventName": "x"}

    codes = [api_client.post(TRACK, body, format="json").status_code for _ in range(4)]
    limited = api_client.post(TRACK, body, format="json")

    assert codes == [200, 200, 200, 429]
    assert envelope(limited)["code"] == "RateLimitExceeded"
    assert int(limited["Retry-After"]) <= 60
    assert Event.objects.count() == 3


def test_an_unexpected_error_is_a_json_500_whose_log_line_carries_no_data(api_client, caplog):
    secret = "ada.lovelace@example.com"
    with mock.patch(
        "contacts.api.views.events.event_track",
        autospec=True,
        side_effect=RuntimeError(f"duplicate key value (email)=({secret})"),
    ):
        client = APIClient(raise_request_exception=False)
        client.credentials(**api_client._credentials)
        with caplog.at_level(logging.INFO):
            response = client.post(TRACK, {"email": secret, "eventName": "x"}, format="json")

    assert response.status_code == 500
    assert envelope(response)["code"] == "GenericError"
    assert "RuntimeError" in caplog.text
    assert secret not in caplog.text


def test_request_lines_in_the_log_hide_the_api_key():
    from config.logging import RedactSecretsFilter

    record = logging.LogRecord(
        "django.server", logging.INFO, "", 0, '"%s" %s %s',
        ("POST /api/events/track?api_key=wm_secret&x=1 HTTP/1.1", "200", "57"), None,
    )  # fmt: skip

    RedactSecretsFilter().filter(record)

    assert "wm_secret" not in record.getMessage()
    assert "api_key=***&x=1" in record.getMessage()


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/api/users/nia@example.com", "/api/users/***"),
        ("/api/users/nia%40example.com", "/api/users/***"),
        ("/api/events/byUserId/u-42", "/api/events/byUserId/***"),
        ("/api/subscriptions/emailList/3/user/a@b.co", "/api/subscriptions/emailList/3/user/***"),
        ("/api/users/getByEmail?email=nia@example.com&x=1", "/api/users/getByEmail?email=***&x=1"),
        ("/api/events/track", "/api/events/track"),
    ],
)  # fmt: skip
def test_log_lines_name_no_user_an_api_path_names(path, shown):
    from config.logging import RedactSecretsFilter

    # As Django logs a 4xx: "Bad Request: <path>".
    record = logging.LogRecord(
        "django.request", logging.WARNING, "", 0, "%s: %s", ("Bad Request", path), None
    )

    RedactSecretsFilter().filter(record)

    assert record.getMessage() == f"Bad Request: {shown}"


def test_a_keys_rate_counter_expires_after_its_window(api_client, settings):
    from contacts.redis import redis_client

    settings.WAYMARK_API = {**settings.WAYMARK_API, "RATE_PER_MINUTE": {"server": 5, "client": 5}}

    api_client.post(TRACK, {"email": "a@example.com", "eventName": "x"}, format="json")
    api_client.post(TRACK, {"email": "a@example.com", "eventName": "x"}, format="json")

    counters = list(redis_client().scan_iter("waymark:api-rate:*"))
    assert len(counters) == 1
    assert int(redis_client().get(counters[0])) == 2  # a small limit is counted exactly
    assert 60 < redis_client().ttl(counters[0]) <= 120


def test_a_high_limit_is_reserved_from_redis_in_chunks_and_still_holds(api_client, settings):
    from contacts.api.throttling import MAX_CHUNK
    from contacts.redis import redis_client

    limit = 200 * MAX_CHUNK  # chunks of MAX_CHUNK requests
    settings.WAYMARK_API = {
        **settings.WAYMARK_API,
        "RATE_PER_MINUTE": {"server": limit, "client": limit},
    }
    body = {"email": "a@example.com", "eventName": "x"}

    codes = {api_client.post(TRACK, body, format="json").status_code for _ in range(MAX_CHUNK + 1)}

    # One chunk served the first MAX_CHUNK requests; the next took a second one.
    (counter,) = redis_client().scan_iter("waymark:api-rate:*")
    assert codes == {200}
    assert int(redis_client().get(counter)) == 2 * MAX_CHUNK

    # When the window's counter is past the limit, the reserved rest is still
    # served, and then the key is refused.
    redis_client().set(counter, limit)
    served = [api_client.post(TRACK, body, format="json").status_code for _ in range(MAX_CHUNK)]
    assert served == [200] * (MAX_CHUNK - 1) + [429]
