"""Fixtures for the delivery backends: servers that misbehave, and the outbox."""

import json
import socket

import pytest


@pytest.fixture
def silent_server():
    """The URL of a server that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def outbox(settings, tmp_path):
    """The outbox directory, and a reader of one medium's outbox lines."""
    settings.WAYMARK_OUTBOX_DIR = str(tmp_path / "outbox")

    def read(medium):
        path = tmp_path / "outbox" / f"{medium}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    return read
