"""Webhooks: method, URL and body from the template; never to an internal
address; error mapping, against a local target server."""

import hashlib
import hmac
import json

import pytest
from werkzeug import Response

from messaging.backends import PermanentDeliveryError, TransientDeliveryError, safehttp
from messaging.backends.webhook import WebhookBackend
from messaging.rendering import RenderError
from tests.conftest import free_port
from tests.factories import ContactFactory, medium_message, medium_template

pytestmark = pytest.mark.django_db


@pytest.fixture
def allow_private(settings):
    # The target is a local server: tests that are not about refusing allow it.
    settings.WAYMARK_WEBHOOK_ALLOW_PRIVATE = True
    settings.WAYMARK_WEBHOOK_SIGNING_SECRET = ""
    settings.WAYMARK_WEBHOOK_TIMEOUT = 2


@pytest.fixture
def refuse_private(settings):
    settings.WAYMARK_WEBHOOK_ALLOW_PRIVATE = False


def webhook(url, body="", method="POST"):
    template = medium_template("webhook", http_method=method, link_url=url, text_body=body)
    return medium_message(template)


def send(message, context=None):
    backend = WebhookBackend()
    return backend.deliver(message, backend.render(message.template, context or {}))


# --- address and template --------------------------------------------------------


def test_the_address_is_who_the_call_is_about():
    backend = WebhookBackend()

    assert backend.address_for(ContactFactory(user_id="u-7", email="a@x.test")) == "u-7"
    assert backend.address_for(ContactFactory(user_id=None, email="b@x.test")) == "b@x.test"


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"link_url": ""}, {"link_url": "A webhook needs a URL."}),
        (
            {"link_url": "ftp://files.example.com/in"},
            {"link_url": "The webhook URL must start with https:// or http://."},
        ),
        (
            {"link_url": "https://x.test/", "http_method": "GET", "text_body": "{}"},
            {
                "text_body": "A GET request carries no body: choose POST, PUT or PATCH, "
                "or empty the body."
            },
        ),
        ({"link_url": "https://hooks.example.com/{{ event.path }}"}, {}),
        ({"link_url": "{{ event.callback_url }}"}, {}),
    ],
)
def test_check_template(fields, errors):
    assert WebhookBackend().check_template(medium_template("webhook", **fields)) == errors


def test_a_url_that_renders_to_something_else_than_http_fails_to_render():
    template = medium_template("webhook", link_url="{{ event.url }}")

    with pytest.raises(RenderError, match="http:// or https://"):
        WebhookBackend().render(template, {"event": {"url": "file:///etc/passwd"}})


def test_a_json_body_keeps_contact_data_as_values(httpserver, allow_private):
    message = webhook(
        httpserver.url_for("/hooks/signup"),
        body='{"user": "{{ contact.user_id }}", "name": "{{ firstName }}", "plan": 3}',
    )
    httpserver.expect_oneshot_request("/hooks/signup", method="POST").respond_with_data("ok")

    # A name crafted to close the string and add a field of its own.
    provider_id = send(
        message, {"contact": {"user_id": "u-1"}, "firstName": 'Ada", "admin": true, "x": "'}
    )

    assert provider_id == ""
    request = httpserver.log[0][0]
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.get_data()) == {
        "user": "u-1",
        "name": 'Ada", "admin": true, "x": "',
        "plan": 3,
    }
    assert request.headers["Idempotency-Key"] == message.idempotency_key
    assert request.headers["User-Agent"].startswith("Waymark-Webhook")


def test_a_body_that_renders_to_json_is_sent_as_json_and_text_as_text(httpserver, allow_private):
    httpserver.expect_request("/in").respond_with_data("ok")

    send(
        webhook(httpserver.url_for("/in"), body='{"count": {{ event.count }}}'),
        {"event": {"count": 2}},
    )
    send(webhook(httpserver.url_for("/in"), body="Ada signed up"))

    (json_request, _), (text_request, _) = httpserver.log
    assert json_request.headers["Content-Type"] == "application/json"
    assert json.loads(json_request.get_data()) == {"count": 2}
    assert text_request.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert text_request.get_data(as_text=True) == "Ada signed up"


def test_method_and_url_come_from_the_template_and_get_sends_no_body(httpserver, allow_private):
    httpserver.expect_oneshot_request("/users/u-1", method="PUT").respond_with_data("")
    httpserver.expect_oneshot_request("/ping", method="GET").respond_with_data("")

    send(
        webhook(httpserver.url_for("/users/{{ contact.user_id }}"), body="{}", method="PUT"),
        {"contact": {"user_id": "u-1"}},
    )
    send(webhook(httpserver.url_for("/ping"), method="GET"))

    assert [(r.method, r.path) for r, _ in httpserver.log] == [
        ("PUT", "/users/u-1"),
        ("GET", "/ping"),
    ]
    assert httpserver.log[1][0].get_data() == b""


def test_calls_are_signed_when_a_secret_is_set(httpserver, allow_private, settings):
    settings.WAYMARK_WEBHOOK_SIGNING_SECRET = "s3cret"
    httpserver.expect_oneshot_request("/in").respond_with_data("ok")

    send(webhook(httpserver.url_for("/in"), body='{"a": 1}'))

    request = httpserver.log[0][0]
    fields = dict(part.split("=", 1) for part in request.headers["Waymark-Signature"].split(","))
    expected = hmac.new(
        b"s3cret", fields["t"].encode() + b"." + request.get_data(), hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)


# --- error mapping -----------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_rate_limits_and_server_errors_are_transient(httpserver, allow_private, status):
    httpserver.expect_oneshot_request("/in").respond_with_data("busy", status=status)

    with pytest.raises(TransientDeliveryError, match=f"answered {status}: busy"):
        send(webhook(httpserver.url_for("/in"), body="{}"))


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_other_client_errors_are_permanent(httpserver, allow_private, status):
    httpserver.expect_oneshot_request("/in").respond_with_data("nope", status=status)

    with pytest.raises(PermanentDeliveryError, match=f"answered {status}: nope"):
        send(webhook(httpserver.url_for("/in"), body="{}"))


def test_a_target_that_does_not_answer_in_time_is_transient(silent_server, allow_private, settings):
    settings.WAYMARK_WEBHOOK_TIMEOUT = 0.2

    with pytest.raises(TransientDeliveryError, match=r"did not answer within 0\.2 seconds"):
        send(webhook(f"{silent_server}/in", body="{}"))


def test_a_target_that_cannot_be_reached_is_transient(allow_private):
    with pytest.raises(TransientDeliveryError, match="ConnectionError"):
        send(webhook(f"http://127.0.0.1:{free_port()}/in", body="{}"))


def test_redirects_are_not_followed(httpserver, allow_private):
    httpserver.expect_oneshot_request("/in").respond_with_response(
        Response(status=302, headers={"Location": httpserver.url_for("/internal")})
    )
    httpserver.expect_request("/internal").respond_with_data("secret")

    with pytest.raises(PermanentDeliveryError, match="redirects are not followed"):
        send(webhook(httpserver.url_for("/in"), body="{}"))

    assert [request.path for request, _ in httpserver.log] == ["/in"]


# --- internal addresses --------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/in",
        "http://localhost:{port}/in",  # a host name that resolves to a loopback address
        "http://[::1]:{port}/in",
        "http://10.0.0.7/in",
        "http://192.168.1.1/in",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata service
        "http://0.0.0.0:{port}/in",
        "http://[::ffff:127.0.0.1]:{port}/in",
    ],
)
def test_internal_addresses_are_refused_before_anything_is_sent(httpserver, refuse_private, url):
    httpserver.expect_request("/in").respond_with_data("ok")

    with pytest.raises(PermanentDeliveryError, match="private or reserved address"):
        send(webhook(url.format(port=httpserver.port), body="{}"))

    assert httpserver.log == []


def test_a_host_is_refused_when_any_of_its_addresses_is_internal(
    httpserver, refuse_private, monkeypatch
):
    # The resolver is the one thing the test cannot arrange for real.
    monkeypatch.setattr(safehttp, "resolve", lambda host, port: ["93.184.216.34", "127.0.0.1"])

    with pytest.raises(PermanentDeliveryError) as caught:
        send(webhook("http://hooks.example.test/in", body="{}"))

    assert "hooks.example.test resolves to 127.0.0.1" in str(caught.value)


def test_the_connection_goes_to_the_address_that_was_checked(
    httpserver, allow_private, monkeypatch
):
    # hooks.example.test exists in no DNS: the request can only arrive if the
    # connection is made to the address the check saw, with the host kept.
    resolved = []

    def resolve(host, port):
        resolved.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(safehttp, "resolve", resolve)
    httpserver.expect_oneshot_request("/in").respond_with_data("ok")

    send(webhook(f"http://hooks.example.test:{httpserver.port}/in", body="{}"))

    assert resolved == ["hooks.example.test"]
    assert httpserver.log[0][0].headers["Host"] == f"hooks.example.test:{httpserver.port}"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.5.4", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.251", False),  # multicast
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_which_addresses_count_as_public(address, public):
    assert safehttp.is_public(address) is public
