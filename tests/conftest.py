"""Shared fixtures: a real SMTP server, real Redis queues, an API client."""

import asyncio
import email
import socket
from email import policy

import django_rq
import pytest
from aiosmtpd.controller import Controller
from django.conf import settings as django_settings
from rest_framework.test import APIClient
from rq import SimpleWorker

from contacts.services import api_key_create

# Tests open connections from server threads (live_server) that end with their
# request: kept for reuse, as production keeps them (DATABASE_CONN_MAX_AGE), they
# would outlive the thread and pile up. Closed at the end of each request instead.
django_settings.DATABASES["default"]["CONN_MAX_AGE"] = 0

ON_POSTGRESQL = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def pytest_collection_modifyitems(config, items):
    """The suite runs on PostgreSQL (production's database) and again on
    SQLite (the embedded default, `make test-sqlite`). On SQLite it skips,
    saying why: a test marked `postgresql` (it checks what only PostgreSQL
    does, or what differs there by design: tests/databases.py); the fault
    tests (their scheduler and worker processes cannot share SQLite's
    in-memory test database); the browser tests (the pages are the same on
    either database)."""
    if ON_POSTGRESQL:
        return
    for item in items:
        if marker := item.get_closest_marker("postgresql"):
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
        elif item.get_closest_marker("faults"):
            reason = "the fault tests' processes cannot share SQLite's in-memory test database"
        elif "tests/browser/" in item.nodeid:
            reason = "the browser tests: the pages are the same on either database"
        else:
            continue
        item.add_marker(pytest.mark.skip(reason=f"PostgreSQL only: {reason}"))


@pytest.fixture(autouse=True)
def empty_cache():
    """Rate-limit and login-failure counters live in the cache (Redis): each test
    starts without another's."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def no_requests_reserved_yet():
    """A process reserves rate-limited requests from Redis in chunks
    (contacts.api.throttling): each test starts as a fresh process would."""
    from contacts.api.throttling import _allowance

    _allowance.clear()


@pytest.fixture(autouse=True)
def no_dispatch_asked_yet():
    """A process asks Redis for an event dispatch job at most twice a second
    (contacts.services.events): each test starts as a fresh process would."""
    from contacts.services import events

    events._dispatch_asked_at = float("-inf")


@pytest.fixture(autouse=True)
def cheap_password_hashing(settings):
    # The production hasher costs most of a second per hash on a small
    # machine; logins and users work the same with a cheap one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class SmtpRecorder:
    """An aiosmtpd handler that keeps what it receives, or refuses on demand."""

    def __init__(self):
        self.messages = []
        self.refuse_with = None  # e.g. "451 4.3.0 Try again later"
        # Called with each message as it arrives, before the server answers:
        # what a test does there happens while the sender waits mid-delivery.
        self.while_receiving = None

    async def handle_DATA(self, server, session, envelope):
        if self.refuse_with:
            return self.refuse_with
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        message.envelope_recipients = list(envelope.rcpt_tos)
        message.peer = session.peer  # the client's (address, port): one per connection
        self.messages.append(message)
        if self.while_receiving is not None:
            # In a thread of its own: the database may not be used from the event loop.
            await asyncio.get_running_loop().run_in_executor(
                None, _in_thread, self.while_receiving, message
            )
        return "250 Message accepted for delivery"


def _in_thread(callback, message):
    from django.db import connection

    try:
        callback(message)
    finally:
        connection.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def point_email_at(settings, port):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on a free local port, with Django's SMTP backend pointed at it."""
    handler = SmtpRecorder()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    point_email_at(settings, controller.port)
    yield handler
    controller.stop()


class ClosedPort:
    """A local port held bound but not listening: connections to it are refused
    at once, and no other process can take it meanwhile (a free port released
    at once could be taken by another test process's server, and answer)."""

    def __init__(self):
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]

    def release(self):
        """Let a server of the test's own listen on the port from now on."""
        self._socket.close()


@pytest.fixture
def smtp_down(settings):
    """Django's SMTP backend pointed at a port where nothing listens."""
    closed = ClosedPort()
    point_email_at(settings, closed.port)
    yield closed
    closed.release()


@pytest.fixture
def rq_queue():
    """The real default queue on Redis, emptied before and after the test."""
    queue = django_rq.get_queue("default")
    db = queue.connection.connection_pool.connection_kwargs.get("db", 0)
    if int(db) == 0:
        pytest.fail(
            "Tests empty their Redis database: set REDIS_URL to a spare one (make test uses /15)."
        )
    queue.connection.flushdb()
    yield queue
    queue.connection.flushdb()


class BurstWorker(SimpleWorker):
    """rq's worker without its pubsub listener for stop-job commands, which
    tests never send. Stopping that listener's thread races with the
    unsubscribe: the thread can be left waiting out rq's 60-second poll (redis-py's
    get_message waits for a subscription that no longer comes), and the worker's
    teardown with it."""

    def subscribe(self):
        pass


@pytest.fixture
def run_worker(rq_queue):
    """Run a real rq worker (no fork) until the queue is empty; returns jobs run."""

    def run():
        worker = BurstWorker([rq_queue], connection=rq_queue.connection)
        worker.work(burst=True)
        return worker.successful_job_count + worker.failed_job_count

    return run


@pytest.fixture
def api_key(db):
    _, raw_key = api_key_create(name="test integration")
    return raw_key


@pytest.fixture
def api_client(api_key):
    client = APIClient()
    client.credentials(HTTP_API_KEY=api_key)
    return client
