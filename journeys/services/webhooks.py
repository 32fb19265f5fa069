"""A journey's webhook call: one HTTP request about one contact, and what came back.

The request goes through messaging.backends.safehttp: every host (the
first and each redirect's) is resolved once and must resolve to public
addresses only (or to networks WAYMARK_WEBHOOK_ALLOWED_NETWORKS allows); the
connection is made to the address checked. The answer is sorted into
success, a failure worth trying again (no answer in time, no connection,
408, 429, 5xx) and one that is not (any other 4xx, a refused address, too
many redirects).
"""

import json
from dataclasses import dataclass
from typing import Any

import requests

from messaging.backends.safehttp import (
    CheckedSession,
    ForbiddenAddress,
    RedirectRefused,
    request_following_redirects,
)

MAX_REDIRECTS = 5
# A response larger than this is not read for fields to save (its start is
# still quoted when the call fails).
MAX_RESPONSE_BYTES = 1024 * 1024
EXCERPT_CHARS = 200


@dataclass(frozen=True)
class WebhookResult:
    """What one call came to. `data` is a 2xx response's JSON (None if it is not JSON)."""

    ok: bool
    transient: bool = False
    status: int | None = None
    detail: str = ""
    data: Any = None


def webhook_call(
    *,
    session: CheckedSession,
    method: str,
    url: str,
    headers: dict,
    body: bytes | None,
    timeout: float,
) -> WebhookResult:
    """Make the call; never raises for what the other end or the network does."""
    try:
        response = request_following_redirects(
            session,
            method,
            url,
            headers=headers,
            data=body,
            timeout=timeout,
            stream=True,
            max_redirects=MAX_REDIRECTS,
        )
    except ForbiddenAddress as exc:
        return WebhookResult(ok=False, detail=f"refused: {exc}")
    except RedirectRefused as exc:
        return WebhookResult(ok=False, detail=str(exc))
    except requests.Timeout:
        return WebhookResult(ok=False, transient=True, detail=f"no answer within {timeout:g} s")
    except requests.RequestException as exc:
        return WebhookResult(ok=False, transient=True, detail=f"{type(exc).__name__}: {exc}"[:300])
    with response:
        status = response.status_code
        try:
            content, complete = _read(response)
        except requests.RequestException as exc:
            if 200 <= status < 300:
                return WebhookResult(
                    ok=False, transient=True, status=status, detail=f"answer cut off: {exc}"
                )
            content, complete = b"", False
    if 200 <= status < 300:
        return WebhookResult(
            ok=True, status=status, detail=f"HTTP {status}", data=_json(content, complete)
        )
    excerpt = " ".join(content[: EXCERPT_CHARS * 4].decode("utf-8", "replace").split())
    detail = f"HTTP {status}"
    if 300 <= status < 400:
        detail += " (a redirect without a Location)"
    if excerpt:
        detail += f": {excerpt[:EXCERPT_CHARS]}"
    return WebhookResult(
        ok=False, transient=status in (408, 429) or status >= 500, status=status, detail=detail
    )


def _read(response) -> tuple[bytes, bool]:
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return b"".join(chunks), False
    return b"".join(chunks), True


def _json(content: bytes, complete: bool):
    if not complete or not content.strip():
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None


_MISSING = object()


def json_path_value(data, path: str):
    """The value at `path` ("user.id", "items.0.sku") in `data`; _MISSING if there is none."""
    node = data
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and _index(part, node) is not None:
            node = node[_index(part, node)]
        else:
            return _MISSING
    return node


def _index(part: str, items: list) -> int | None:
    if not part.lstrip("-").isdigit():
        return None
    index = int(part)
    return index if -len(items) <= index < len(items) else None


def is_missing(value) -> bool:
    return value is _MISSING


def nested(path: str, value) -> dict:
    """{"a": {"b": value}} for "a.b"."""
    *parents, leaf = path.split(".")
    result = {leaf: value}
    for part in reversed(parents):
        result = {part: result}
    return result


def deep_merge(stored: dict, new: dict) -> dict:
    merged = dict(stored)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
