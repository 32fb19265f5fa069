"""The development outbox: messages written to files instead of sent.

Each medium's outbox backend appends one JSON line per message to
WAYMARK_OUTBOX_DIR/<medium>.jsonl and logs one line, so `make run` shows
SMS, WhatsApp and push messages with no provider account anywhere.
"""

import json
import logging
import os
import uuid
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from messaging.backends import TransientDeliveryError

logger = logging.getLogger("messaging.outbox")


def outbox_path(medium: str) -> Path:
    return Path(settings.WAYMARK_OUTBOX_DIR) / f"{medium}.jsonl"


def outbox_write(*, medium: str, message, to: str, content: dict) -> str:
    """Append one message to the medium's outbox file; returns its outbox id."""
    outbox_id = f"outbox-{uuid.uuid4().hex}"
    record = {
        "id": outbox_id,
        "at": timezone.now().isoformat(),
        "medium": medium,
        "message_id": message.pk,
        "idempotency_key": message.idempotency_key,
        "to": to,
        **content,
    }
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
    path = outbox_path(medium)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One write() of an O_APPEND file: lines from several workers do not interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        raise TransientDeliveryError(f"Could not write to the outbox {path}: {exc}") from exc
    summary = " ".join(str(content.get("title") or content.get("text") or "").split())
    logger.info("%s to %s: %s (%s)", medium, to, summary[:120], path)
    return outbox_id
