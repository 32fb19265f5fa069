"""The webhook step: a call about the contact to a real local HTTP server;
never to an internal address unless its network is allowed; retries for
passing failures only; fields of the answer kept for later steps."""

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.urls import reverse
from django.utils import timezone

from journeys.models import Enrollment, Journey, NotifyStaffStep, StepRun, WebhookStep
from journeys.services.exchange import journey_export, journey_import
from journeys.services.graph import step_connect
from journeys.services.runner import enrollments_advance
from journeys.services.scheduling import enrollments_claim_due
from journeys.services.validation import journey_problems
from messaging.backends import safehttp
from tests.admin_pages import form_data
from tests.factories import (
    ContactFactory,
    EnrollmentFactory,
    ExitStepFactory,
    JourneyFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


class Target:
    """What the local server receives, and the answers it gives, path by path
    (the last answer for a path is given again once the others are used)."""

    def __init__(self, port):
        self.port = port
        self.requests = []
        self.answers = {}

    def url(self, path="/hook", host="127.0.0.1"):
        return f"http://{host}:{self.port}{path}"

    def answer(self, path, status=200, body=b"", headers=None, delay=0):
        if isinstance(body, dict | list):
            body, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
        elif isinstance(body, str):
            body = body.encode()
        self.answers.setdefault(path, []).append((status, body, headers or {}, delay))

    def next_answer(self, path):
        answers = self.answers.get(path) or [(200, b"ok", {}, 0)]
        return answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.fixture
def target(settings):
    """A real HTTP server on 127.0.0.1, whose network (only) the setting allows."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.target = Target(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.WAYMARK_WEBHOOK_ALLOW_PRIVATE = False
    settings.WAYMARK_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.WAYMARK_WEBHOOK_SIGNING_SECRET = ""
    yield server.target
    server.shutdown()
    server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def _handle(self):
        target = self.server.target
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target.requests.append((self.command, self.path, dict(self.headers), body))
        status, content, headers, delay = target.next_answer(self.path)
        if delay:
            time.sleep(delay)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = _handle

    def log_message(self, *args):
        pass


@pytest.fixture
def journey():
    return JourneyFactory(name="CRM sync")


def webhook(journey, position=1, failed_step=None, **fields):
    fields.setdefault("url", "http://127.0.0.1:9/hook")
    step = WebhookStep.objects.create(
        journey=journey, key=f"hook-{position}", position=position, **fields
    )
    if failed_step is not None:
        step_connect(step=step, targets={"failed": failed_step})
    return step


def run_due(later=timedelta(0)):
    claim = enrollments_claim_due(now=timezone.now() + later, enqueue=False)
    assert claim is not None
    enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)


def run_from(first, contact, trigger_data=None):
    EnrollmentFactory(
        journey=first.journey, contact=contact, current_step=first, trigger_data=trigger_data or {}
    )
    run_due()
    return Enrollment.objects.get(journey=first.journey, contact=contact)


def runs(step):
    return list(
        StepRun.objects.filter(step=step).order_by("id").values_list("outcome", "branch", "detail")
    )


# --- the call --------------------------------------------------------------------------


def test_posts_json_from_the_contact_and_the_event_with_the_steps_headers(journey, target):
    step = webhook(
        journey,
        url=target.url("/crm/{{ event.plan }}"),
        headers={"Authorization": "Bearer s3cret"},
        body='{"email": "{{ contact.email }}", "name": "{{ firstName }}", '
        '"plan": "{{ event.plan }}"}',
    )
    contact = ContactFactory(email="ada@example.com", attributes={"firstName": 'Ada", "x": "'})

    enrollment = run_from(step, contact, trigger_data={"plan": "pro"})

    ((method, path, headers, body),) = target.requests
    assert (method, path) == ("POST", "/crm/pro")
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"].startswith(f"journey:{journey.pk}:enrollment:")
    # The contact's data stays a value: it cannot add fields to the body.
    assert json.loads(body) == {"email": "ada@example.com", "name": 'Ada", "x": "', "plan": "pro"}
    assert enrollment.state == Enrollment.State.COMPLETED
    assert runs(step) == [("completed", "ok", "HTTP 200")]


def test_get_and_put_are_sent_with_the_chosen_method(journey, target):
    first = webhook(journey, 1, method="GET", url=target.url("/ping?u={{ contact.email }}"))
    webhook(journey, 2, method="PUT", url=target.url("/users"), body='{"a": 1}')

    run_from(first, ContactFactory(email="bo@example.com"))

    assert [(m, p, b) for m, p, _, b in target.requests] == [
        ("GET", "/ping?u=bo@example.com", b""),
        ("PUT", "/users", b'{"a": 1}'),
    ]


def test_answer_fields_go_to_the_contact_and_to_later_steps(journey, target):
    target.answer("/score", body={"data": {"id": "crm-42", "score": 87}, "tags": ["vip", "eu"]})
    first = webhook(
        journey,
        1,
        url=target.url("/score"),
        save_to_attributes={"data.id": "crm.id", "tags.0": "segment", "data.nope": "nope"},
        save_to_data={"data.score": "lead_score"},
    )
    webhook(journey, 2, url=target.url("/later"), body='{"score": "{{ event.lead_score }}"}')
    contact = ContactFactory(attributes={"firstName": "Ada", "crm": {"since": 2020}})

    enrollment = run_from(first, contact, trigger_data={"plan": "pro"})

    contact.refresh_from_db()
    assert contact.attributes == {
        "firstName": "Ada",
        "crm": {"since": 2020, "id": "crm-42"},
        "segment": "vip",
    }
    assert enrollment.trigger_data == {"plan": "pro", "lead_score": 87}
    assert json.loads(target.requests[1][3]) == {"score": "87"}
    (detail,) = [d for _, _, d in runs(first)]
    assert detail == (
        "HTTP 200; kept lead_score for later steps; saved crm, segment on the contact; "
        "not in the answer: data.nope"
    )


def test_an_answer_that_is_not_json_saves_nothing_and_says_so(journey, target):
    target.answer("/hook", body="<html>thanks</html>")
    step = webhook(journey, url=target.url(), save_to_attributes={"id": "crm_id"})
    contact = ContactFactory(attributes={})

    run_from(step, contact)

    contact.refresh_from_db()
    assert contact.attributes == {}
    assert runs(step) == [("completed", "ok", "HTTP 200; the answer is not JSON: nothing saved")]


def test_redirects_are_followed_and_each_hop_checked(journey, target):
    target.answer("/old", status=302, headers={"Location": "/new"})
    target.answer("/new", status=200, body="ok")
    step = webhook(journey, url=target.url("/old"), body='{"a": 1}')

    run_from(step, ContactFactory())

    # A 302 after a POST goes on as a GET, as browsers do.
    assert [(m, p) for m, p, _, _ in target.requests] == [("POST", "/old"), ("GET", "/new")]
    assert runs(step) == [("completed", "ok", "HTTP 200")]


# --- refused addresses -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",  # a name that resolves to a loopback address
        "http://[::1]:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",  # IPv4-mapped
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",  # the cloud metadata service
        "http://0.0.0.0:{port}/hook",
        "http://224.0.0.1/hook",
    ],
)
def test_internal_addresses_are_refused_and_not_tried_again(journey, target, settings, url):
    settings.WAYMARK_WEBHOOK_ALLOWED_NETWORKS = []
    done = ExitStepFactory(journey=journey, key="done", position=5)
    handle = ExitStepFactory(journey=journey, key="handle-failure", position=6)
    step = webhook(journey, url=url.format(port=target.port), failed_step=handle)

    enrollment = run_from(step, ContactFactory())

    assert target.requests == []
    ((outcome, branch, detail),) = runs(step)
    assert (outcome, branch) == ("continued", "failed")
    assert detail.startswith("failed: refused: ")
    assert "private or reserved address" in detail
    assert enrollment.state == Enrollment.State.COMPLETED
    assert StepRun.objects.filter(enrollment=enrollment, step=handle).exists()
    assert not StepRun.objects.filter(enrollment=enrollment, step=done).exists()


@pytest.mark.parametrize(
    "location", ["http://10.0.0.5/internal", "http://169.254.169.254/latest/meta-data/"]
)
def test_a_redirect_to_an_internal_address_is_refused(journey, target, location):
    target.answer("/hook", status=302, headers={"Location": location})
    step = webhook(journey, url=target.url())

    run_from(step, ContactFactory())

    assert len(target.requests) == 1  # the allowed server, and nothing after it
    ((outcome, branch, detail),) = runs(step)
    assert (outcome, branch) == ("completed", "failed")
    assert "refused:" in detail and location.split("/")[2] in detail


def test_a_redirect_to_another_scheme_or_too_many_redirects_fail(journey, target):
    target.answer("/file", status=302, headers={"Location": "file:///etc/passwd"})
    target.answer("/loop", status=302, headers={"Location": "/loop"})
    first = webhook(journey, 1, url=target.url("/file"))
    second = webhook(journey, 2, url=target.url("/loop"))

    run_from(first, ContactFactory())

    assert runs(first) == [
        ("continued", "failed", "failed: Redirected to 'file:///etc/passwd': "
         "only http and https are followed."),
    ]  # fmt: skip
    assert len([p for _, p, _, _ in target.requests if p == "/loop"]) == 6
    ((_, branch, detail),) = runs(second)
    assert branch == "failed" and detail.startswith("failed: More than 5 redirects")


def test_the_allowed_networks_setting_lets_exactly_its_networks_through(settings):
    settings.WAYMARK_WEBHOOK_ALLOW_PRIVATE = False
    settings.WAYMARK_WEBHOOK_ALLOWED_NETWORKS = ["10.20.0.0/16", "fd00:1::/64"]

    assert safehttp.is_allowed("10.20.3.4")
    assert safehttp.is_allowed("::ffff:10.20.3.4")
    assert safehttp.is_allowed("fd00:1::5")
    assert safehttp.is_allowed("93.184.216.34")  # public
    assert not safehttp.is_allowed("10.21.0.1")
    assert not safehttp.is_allowed("127.0.0.1")
    assert not safehttp.is_allowed("169.254.169.254")


def test_a_setting_that_is_not_a_network_is_a_clear_error(settings):
    settings.WAYMARK_WEBHOOK_ALLOW_PRIVATE = False
    settings.WAYMARK_WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8", "intranet"]

    with pytest.raises(ImproperlyConfigured, match="'intranet' is not a network"):
        safehttp.is_allowed("10.1.1.1")


# --- failures and retries --------------------------------------------------------------


def test_a_target_that_does_not_answer_in_time_is_tried_again_later(journey, target):
    target.answer("/slow", delay=2.5)
    step = webhook(journey, url=target.url("/slow"), timeout=1)

    enrollment = run_from(step, ContactFactory())

    ((outcome, _, detail),) = runs(step)
    assert outcome == "retry"
    assert detail.startswith("try 1 of 4 failed: no answer within 1 s; again at ")
    assert enrollment.state == Enrollment.State.WAITING
    assert enrollment.current_step_id == step.pk
    assert enrollment.next_run_at > timezone.now() + timedelta(seconds=50)


def test_a_server_error_is_tried_again_with_the_same_idempotency_key(journey, target):
    target.answer("/hook", status=500, body="database is down")
    target.answer("/hook", status=200, body="ok")
    step = webhook(journey, url=target.url())

    run_from(step, ContactFactory())
    run_due(later=timedelta(minutes=2))

    assert [outcome for outcome, _, _ in runs(step)] == ["retry", "completed"]
    assert runs(step)[0][2].startswith("try 1 of 4 failed: HTTP 500: database is down; again at")
    keys = {headers["Idempotency-Key"] for _, _, headers, _ in target.requests}
    assert len(target.requests) == 2 and len(keys) == 1
    assert Enrollment.objects.get().state == Enrollment.State.COMPLETED


def test_after_the_last_retry_the_contact_takes_the_failed_connection(journey, target):
    target.answer("/hook", status=503, body="try later")
    handle = ExitStepFactory(journey=journey, key="handle-failure", position=6)
    step = webhook(journey, url=target.url(), retries=1, failed_step=handle)

    enrollment = run_from(step, ContactFactory())
    run_due(later=timedelta(minutes=2))

    assert [(o, b) for o, b, _ in runs(step)] == [("retry", ""), ("continued", "failed")]
    assert runs(step)[1][2] == "failed after 2 tries: HTTP 503: try later"
    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED
    assert StepRun.objects.filter(enrollment=enrollment, step=handle).exists()


def test_a_client_error_is_not_tried_again(journey, target):
    target.answer("/hook", status=404, body="<h1>Not   found</h1>\n" + "x" * 500)
    step = webhook(journey, url=target.url())

    run_from(step, ContactFactory())

    ((outcome, branch, detail),) = runs(step)
    assert (outcome, branch) == ("completed", "failed")
    assert detail.startswith("failed: HTTP 404: <h1>Not found</h1> xxx")
    assert len(detail) < 250  # a short excerpt of the answer
    assert len(target.requests) == 1


def test_a_url_that_renders_to_something_else_than_http_fails(journey, target):
    step = webhook(journey, url="{{ event.callback }}")

    run_from(step, ContactFactory(), trigger_data={"callback": "file:///etc/passwd"})

    ((_, branch, detail),) = runs(step)
    assert branch == "failed" and "http:// or https://" in detail


def test_a_batch_of_contacts_makes_one_call_each(journey, target):
    step = webhook(journey, url=target.url(), body='{"email": "{{ contact.email }}"}')
    contacts = [ContactFactory() for _ in range(3)]
    for contact in contacts:
        EnrollmentFactory(journey=journey, contact=contact, current_step=step)

    run_due()

    sent = sorted(json.loads(body)["email"] for _, _, _, body in target.requests)
    assert sent == sorted(contact.email for contact in contacts)
    assert set(Enrollment.objects.values_list("state", flat=True)) == {"completed"}


# --- the step's settings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"url": "ftp://example.com/in"}, "url"),
        ({"url": "example.com/in"}, "url"),
        ({"url": "https://x.test/{% if %}"}, "url"),
        ({"method": "GET", "body": '{"a": 1}'}, "body"),
        ({"timeout": 31}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"retries": 6}, "retries"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"headers": {"X-Token": "a\r\nX-Injected: 1"}}, "headers"),
        ({"headers": ["Authorization"]}, "headers"),
        ({"save_to_attributes": {"data.id": ""}}, "save_to_attributes"),
        ({"save_to_data": {"": "score"}}, "save_to_data"),
    ],
)
def test_settings_that_cannot_work_are_refused(journey, fields, field):
    step = WebhookStep(journey=journey, key="hook", position=1, url="https://x.test/in")
    for name, value in fields.items():
        setattr(step, name, value)

    with pytest.raises(ValidationError) as caught:
        step.full_clean()

    assert field in caught.value.message_dict


def test_a_url_with_a_template_is_accepted(journey):
    WebhookStep(
        journey=journey, key="hook", position=1, url="https://hooks.example.com/{{ event.path }}"
    ).full_clean()


def test_the_document_carries_the_webhook(journey):
    handle = ExitStepFactory(journey=journey, key="handle-failure", position=6)
    webhook(
        journey,
        url="https://crm.example.com/in",
        headers={"Authorization": "Bearer t"},
        body='{"email": "{{ contact.email }}"}',
        retries=2,
        save_to_data={"data.score": "score"},
        failed_step=handle,
    )
    document = journey_export(journey=journey)

    copy = journey_import(document=document, name="CRM sync 2")

    assert document["steps"][0] == {
        "key": "hook-1",
        "type": "webhook",
        "method": "POST",
        "url": "https://crm.example.com/in",
        "headers": {"Authorization": "Bearer t"},
        "body": '{"email": "{{ contact.email }}"}',
        "retries": 2,
        "save_to_data": {"data.score": "score"},
        "connections": {"failed": "handle-failure"},
    }
    assert journey_export(journey=copy) == {**document, "name": "CRM sync 2"}


@pytest.fixture
def other_target(target):
    """A second server, at another origin (another port) of the same allowed host."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.target = Target(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.target
    server.shutdown()
    server.server_close()


def test_authorization_is_not_carried_to_another_host_on_a_redirect(journey, target, other_target):
    target.answer("/hook", status=307, headers={"Location": other_target.url("/elsewhere")})
    step = webhook(journey, url=target.url(), headers={"Authorization": "Bearer s3cret"})

    run_from(step, ContactFactory())

    ((_, _, first_headers, _),) = target.requests
    ((method, path, headers, _),) = other_target.requests
    assert first_headers["Authorization"] == "Bearer s3cret"
    assert (method, path) == ("POST", "/elsewhere")  # 307 keeps the method
    assert "Authorization" not in headers


# --- in the admin ----------------------------------------------------------------------


def test_a_drafter_adds_a_webhook_and_a_staff_note_in_the_admin(client, settings):
    drafter = UserFactory(is_superuser=False, is_staff=True)
    drafter.groups.add(Group.objects.get(name="Journey drafters"))
    client.force_login(drafter)
    draft = JourneyFactory(name="Spring sale", state=Journey.State.DRAFT)
    ExitStepFactory(journey=draft, key="done", position=9)
    url = reverse("admin:journeys_journey_change", args=[draft.pk])
    data = form_data(client.get(url))
    n = int(data["steps-TOTAL_FORMS"])
    data["steps-TOTAL_FORMS"] = n + 2
    data.update(
        {
            f"steps-{n}-polymorphic_ctype": ContentType.objects.get_for_model(WebhookStep).pk,
            f"steps-{n}-position": 1,
            f"steps-{n}-key": "crm",
            f"steps-{n}-method": "POST",
            f"steps-{n}-url": "https://crm.example.com/in",
            f"steps-{n}-headers": '{"Authorization": "Bearer t"}',
            f"steps-{n}-body": '{"email": "{{ contact.email }}"}',
            f"steps-{n}-timeout": 5,
            f"steps-{n}-retries": 2,
            f"steps-{n}-save_to_attributes": '{"data.id": "crm_id"}',
            f"steps-{n}-save_to_data": "{}",
            f"steps-{n + 1}-polymorphic_ctype": ContentType.objects.get_for_model(
                NotifyStaffStep
            ).pk,
            f"steps-{n + 1}-position": 2,
            f"steps-{n + 1}-key": "tell-sales",
            f"steps-{n + 1}-recipients": "sales@example.com",
            f"steps-{n + 1}-subject": "{{ contact.email }} signed up",
        }
    )

    response = client.post(url, data)

    assert response.status_code == 302, response.context["errors"]
    hook = WebhookStep.objects.get(journey=draft)
    assert (hook.url, hook.headers, hook.save_to_attributes) == (
        "https://crm.example.com/in",
        {"Authorization": "Bearer t"},
        {"data.id": "crm_id"},
    )
    assert NotifyStaffStep.objects.get(journey=draft).recipients == "sales@example.com"


def test_the_journey_roles_cover_the_new_step_types():
    def codenames(name):
        return set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))

    for model in ("webhookstep", "notifystaffstep"):
        assert f"view_{model}" in codenames("Journey viewers")
        assert {f"add_{model}", f"change_{model}", f"delete_{model}"} <= codenames(
            "Journey drafters"
        )
        assert {f"add_{model}", f"change_{model}", f"delete_{model}"} <= codenames(
            "Journey managers"
        )


def test_going_live_counts_the_failed_connection(journey):
    handle = ExitStepFactory(journey=journey, key="handle-failure", position=9)
    webhook(journey, 1, failed_step=handle)
    ExitStepFactory(journey=journey, key="done", position=2)

    assert journey_problems(journey=journey) == []


@pytest.mark.postgresql(reason="PostgreSQL's JSON cannot store a NUL character; SQLite can")
def test_an_answer_value_the_database_cannot_store_is_reported_and_the_contact_goes_on(
    journey, target
):
    target.answer("/hook", body={"id": "a\u0000b"})
    step = webhook(
        journey, url=target.url(), save_to_attributes={"id": "crm_id"}, save_to_data={"id": "crm"}
    )
    contact = ContactFactory(attributes={})

    enrollment = run_from(step, contact)

    contact.refresh_from_db()
    assert contact.attributes == {}
    assert enrollment.trigger_data == {}
    assert enrollment.state == Enrollment.State.COMPLETED
    assert runs(step) == [
        (
            "completed",
            "ok",
            "HTTP 200; the journey's data could not store the answer's fields; "
            "attributes not saved: The data cannot be stored.",
        )
    ]


def test_a_batch_stops_calling_when_its_time_runs_out_and_the_rest_go_next_pass(
    journey, target, settings
):
    # A third of a 3-second lease: the second slow call ends past it.
    settings.WAYMARK_ENGINE = {**settings.WAYMARK_ENGINE, "LEASE": timedelta(seconds=3)}
    target.answer("/slow", delay=0.6)
    step = webhook(journey, url=target.url("/slow"), retries=0)
    contacts = [ContactFactory() for _ in range(3)]
    for contact in contacts:
        EnrollmentFactory(journey=journey, contact=contact, current_step=step)

    run_due()

    called = len(target.requests)
    assert 1 <= called <= 2
    deferred = StepRun.objects.filter(step=step, outcome="retry")
    assert deferred.count() == 3 - called
    assert {run.detail for run in deferred} == {
        "not called yet: this batch ran out of time; on the next pass"
    }

    run_due()

    # Not counted as a try: with no retries left, they are still called.
    assert len(target.requests) == 3
    assert set(Enrollment.objects.values_list("state", flat=True)) == {"completed"}


def test_a_batch_costs_a_fixed_number_of_queries_per_contact(journey, target):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    target.answer("/hook", body={"id": "crm-1", "score": 3})
    step = webhook(
        journey,
        url=target.url(),
        save_to_attributes={"id": "crm_id"},
        save_to_data={"score": "score"},
    )

    def queries_to_advance(contacts):
        for contact in ContactFactory.create_batch(contacts):
            EnrollmentFactory(journey=journey, contact=contact, current_step=step)
        claim = enrollments_claim_due(enqueue=False)
        with CaptureQueriesContext(connection) as queries:
            counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)
        assert counts == {"completed": contacts}
        return len(queries)

    queries_to_advance(1)
    q2, q4, q8 = (queries_to_advance(n) for n in (2, 4, 8))

    # Per contact: the journey's data (with its savepoint), the attributes
    # (through the users service: lock, write, savepoints) and the transition;
    # the tries so far are read once for the batch.
    per_contact = (q4 - q2) // 2
    assert q8 - q4 == 4 * per_contact
    assert per_contact <= 10
