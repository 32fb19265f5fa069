"""The integrator API under load: `events/track` through gunicorn, driven by wrk.

gunicorn, configured as in production (config/gunicorn.conf.py: threaded
workers, one per core plus one; WEB_CONCURRENCY and WAYMARK_WEB_THREADS override it),
serves the API on a bench database;
wrk sends POST /api/events/track from 32 concurrent connections for 20
seconds, every request a new contact and event, while a live journey waits
for the event. The figures are wrk's: requests per second and latency
percentiles. Needs wrk (`apt-get install wrk`; `make bench` installs it).
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from contacts.models import Event
from contacts.services import api_key_create
from journeys.models import Journey, JourneyTrigger, SendMessageStep
from messaging.models import Template
from subscriptions.models import Channel, MessageType

CONNECTIONS = int(os.environ.get("BENCH_API_CONNECTIONS", 32))
DURATION = int(os.environ.get("BENCH_API_SECONDS", 20))

LUA = """
counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Api-Key"] = "%(key)s"
request = function()
  counter = counter + 1
  local body = string.format(
    '{"email": "load-%%d-%%d@example.com", "eventName": "signed_up", '
    .. '"dataFields": {"plan": "pro", "source": "bench"}}', counter, math.random(1, 1e9))
  return wrk.format(nil, "/api/events/track", nil, body)
end
"""


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


@contextmanager
def serve():
    """Waymark under gunicorn, as configured for production, on the bench
    database; yields its port."""
    database = settings.DATABASES["default"]
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}"
        ),
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    gunicorn = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "config/gunicorn.conf.py",
         "config.wsgi", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=Path(settings.BASE_DIR), env=env,
    )  # fmt: skip
    try:
        _wait_for(port)
        yield port
    finally:
        gunicorn.terminate()
        gunicorn.wait()


def gunicorn_shape():
    workers = os.environ.get("WEB_CONCURRENCY", os.cpu_count() + 1)
    return f"gunicorn: {workers} workers x {os.environ.get('WAYMARK_WEB_THREADS', 4)} threads"


def run():
    if shutil.which("wrk") is None:
        print("   skipped: wrk is not installed (apt-get install wrk)")
        return
    channel = Channel.objects.create(name="Bench email", medium="email")
    message_type = MessageType.objects.create(channel=channel, name="Bench news")
    template = Template.objects.create(
        name="Bench welcome",
        message_type=message_type,
        subject="Hi",
        html_body='<p>Hi</p><a href="{{ links.unsubscribe }}">Unsubscribe</a>',
    )
    journey = Journey.objects.create(name="Bench signup", state=Journey.State.LIVE)
    JourneyTrigger.objects.create(journey=journey, kind="event", event_name="signed_up")
    SendMessageStep.objects.create(journey=journey, key="welcome", position=1, template=template)
    _, raw_key = api_key_create(name="bench")

    script = Path(tempfile.mkdtemp(prefix="bench-api-")) / "track.lua"
    script.write_text(LUA % {"key": raw_key})
    with serve() as port:
        # A short warm-up: connections, imports, the first queries' plans.
        subprocess.run(["wrk", "-t2", "-c4", "-d2s", "-s", str(script), f"http://127.0.0.1:{port}"],
                       capture_output=True, check=True)  # fmt: skip
        before = Event.objects.count()
        result = subprocess.run(
            ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency", "-s", str(script),
             f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    stored = Event.objects.count() - before
    out = result.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, flags=re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    print(
        f"   events/track, {CONNECTIONS} connections, {DURATION}s: {float(rate):,.0f} requests/s, "
        f"p50 {percentiles.get('50')}, p90 {percentiles.get('90')}, p99 {percentiles.get('99')}; "
        f"{stored:,} events stored, {errors.group(1) if errors else 0} non-2xx "
        f"({gunicorn_shape()})"
    )
