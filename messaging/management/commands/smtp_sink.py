import email
import logging
import signal
import threading
from datetime import UTC, datetime
from email import policy
from pathlib import Path

from aiosmtpd.controller import Controller
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class MailFolderHandler:
    """An aiosmtpd handler that keeps every message it receives as an .eml file.

    Nothing is relayed: this is where `make run` sends mail, so that what a
    journey sends can be read on the machine running it.
    """

    def __init__(self, folder, announce=None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.announce = announce or (lambda line: None)
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        path = self.store(envelope.content)
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        recipients = ", ".join(envelope.rcpt_tos)
        self.announce(f"to {recipients}: {message.get('Subject', '')!r} -> {path}")
        return "250 Message accepted for delivery"

    def store(self, content: bytes) -> Path:
        """Write one message to <timestamp>-<n>.eml; never overwrite an earlier one."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        with self._lock:
            while True:
                self.count += 1
                path = self.folder / f"{stamp}-{self.count}.eml"
                try:
                    with path.open("xb") as file:
                        file.write(content)
                    return path
                except FileExistsError:
                    continue


class Command(BaseCommand):
    help = (
        "Run a local SMTP server that writes every message it receives to a folder as "
        ".eml files instead of delivering it. Runs until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument("--port", type=int, default=1025, help="Port to listen on.")
        parser.add_argument(
            "--dir",
            default=str(settings.BASE_DIR / "var" / "mail"),
            help="Folder for the received messages (default: var/mail).",
        )

    def handle(self, *args, host, port, dir, **options):
        # aiosmtpd logs every SMTP command at INFO; one line per message is enough here.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        handler = MailFolderHandler(dir, announce=self._announce)
        controller = Controller(handler, hostname=host, port=port, enable_SMTPUTF8=True)
        try:
            controller.start()
        except Exception as exc:
            raise CommandError(f"Could not listen on {host}:{port}: {exc}") from exc

        stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
        signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
        self._announce(f"SMTP sink listening on {host}:{port}; messages go to {handler.folder}/")
        try:
            while not stopping.wait(timeout=1):
                pass
        finally:
            controller.stop()
        self._announce("SMTP sink stopped.")

    def _announce(self, line):
        self.stdout.write(line)
        self.stdout.flush()
