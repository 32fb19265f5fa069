"""The mail sink `make run` sends to: every message lands in a folder."""

import email
import smtplib
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

import pytest
import time_machine
from aiosmtpd.controller import Controller

from messaging.management.commands.smtp_sink import MailFolderHandler
from tests.conftest import free_port


@pytest.fixture
def sink(tmp_path):
    announced = []
    handler = MailFolderHandler(tmp_path / "mail", announce=announced.append)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.announced = announced
    handler.port = controller.port
    yield handler
    controller.stop()


def send(port, subject, to="ada@example.com"):
    message = EmailMessage()
    message["From"] = "Acme <waymark@localhost>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Hello from the journey.")
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        smtp.send_message(message)


def test_received_mail_is_written_as_eml_file(sink, tmp_path):
    # When a message is sent to the sink
    send(sink.port, "Welcome to Acme, Ada!")

    # Then it is in the folder as an .eml file, readable as the email it was
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    stored = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert stored["Subject"] == "Welcome to Acme, Ada!"
    assert stored.get_content().strip() == "Hello from the journey."
    # and one line names recipient, subject and file
    assert sink.announced == [f"to ada@example.com: 'Welcome to Acme, Ada!' -> {files[0]}"]


def test_every_message_gets_its_own_file(sink, tmp_path):
    for n in range(3):
        send(sink.port, f"Message {n}")

    subjects = sorted(
        email.message_from_bytes(path.read_bytes(), policy=policy.default)["Subject"]
        for path in (tmp_path / "mail").glob("*.eml")
    )
    assert subjects == ["Message 0", "Message 1", "Message 2"]


def test_a_name_taken_by_an_earlier_run_is_not_overwritten(tmp_path):
    with time_machine.travel(datetime(2025, 3, 1, 9, 30, tzinfo=UTC), tick=False):
        # Given a file from an earlier sink with the name the next message would get
        first = MailFolderHandler(tmp_path).store(b"Subject: one\r\n\r\nfirst\r\n")

        # When a restarted sink stores a message in the same second
        second = MailFolderHandler(tmp_path).store(b"Subject: two\r\n\r\nsecond\r\n")

    # Then both are kept
    assert first != second
    assert first.read_bytes().startswith(b"Subject: one")
    assert second.read_bytes().startswith(b"Subject: two")
