"""Webhooks: an HTTP request to a URL of the template's, about one contact.

The template gives the method, the URL and the body. A body written as JSON
has each of its strings rendered on its own and the result encoded again,
so whatever a contact's data holds (quotes, braces) stays a value and
cannot add fields; it is sent as application/json. Other bodies are sent as
rendered, as JSON when they turn out to be JSON and as plain text otherwise.

Calls go through messaging.backends.safehttp: never to an internal address,
redirects not followed. Each carries the message's idempotency key in
`Idempotency-Key`, and, when WAYMARK_WEBHOOK_SIGNING_SECRET is set, a
signature the receiver can check:
`Waymark-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
"""

import hashlib
import hmac
import json
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import requests
from django.conf import settings

from messaging.backends import PermanentDeliveryError, TransientDeliveryError
from messaging.backends.base import Backend, Rendered
from messaging.backends.safehttp import CheckedSession, ForbiddenAddress
from messaging.rendering import RenderError, render_string

USER_AGENT = "Waymark-Webhook/1"


def _render_json(value, context):
    if isinstance(value, str):
        return render_string(value, context, html=False)
    if isinstance(value, list):
        return [_render_json(item, context) for item in value]
    if isinstance(value, dict):
        return {
            render_string(key, context, html=False): _render_json(item, context)
            for key, item in value.items()
        }
    return value


def render_body(source: str, context: dict) -> tuple[str, bool]:
    """(body, whether it is JSON)."""
    if not source.strip():
        return "", False
    try:
        shape = json.loads(source)
    except ValueError:
        shape = None
    if isinstance(shape, dict | list):
        return json.dumps(_render_json(shape, context), ensure_ascii=False), True
    body = render_string(source, context, html=False)
    try:
        json.loads(body)
    except ValueError:
        return body, False
    return body, True


def signature_headers(body: bytes | None) -> dict:
    """`Waymark-Signature` for `body` when WAYMARK_WEBHOOK_SIGNING_SECRET is set."""
    secret = settings.WAYMARK_WEBHOOK_SIGNING_SECRET
    if not secret:
        return {}
    timestamp = str(int(time.time()))
    signed = timestamp.encode() + b"." + (body or b"")
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return {"Waymark-Signature": f"t={timestamp},v1={digest}"}


def url_problem(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "The webhook URL must be an http:// or https:// URL with a host."
    return ""


class WebhookBackend(Backend):
    medium = "webhook"
    template_fields = ("http_method", "link_url", "text_body")

    def address_for(self, contact) -> str:
        # A webhook is about a contact rather than sent to one: who it is about
        # is what the send log shows. Every contact has an email or a user id.
        return contact.user_id or contact.email or f"contact {contact.pk}"

    def check_template(self, template) -> dict:
        errors = {}
        url = template.link_url.strip()
        if not url:
            errors["link_url"] = "A webhook needs a URL."
        elif not url.startswith("{"):
            # Only what comes before a template tag can be checked before rendering.
            literal = url.split("{", 1)[0]
            if not literal.lower().startswith(("http://", "https://")):
                errors["link_url"] = "The webhook URL must start with https:// or http://."
        if (template.http_method or "POST") == "GET" and template.text_body.strip():
            errors["text_body"] = (
                "A GET request carries no body: choose POST, PUT or PATCH, or empty the body."
            )
        return errors

    def render(self, template, context, *, links=None) -> Rendered:
        method = template.http_method or "POST"
        url = render_string(template.link_url, context, html=False).strip()
        if problem := url_problem(url):
            raise RenderError(f"{problem} It rendered as {url[:200]!r}.")
        body, is_json = ("", False)
        if method != "GET":
            body, is_json = render_body(template.text_body, context)
        headers = {}
        if body:
            headers["Content-Type"] = "application/json" if is_json else "text/plain; charset=utf-8"
        return Rendered(method=method, url=url, text=body, headers=headers)

    @contextmanager
    def session(self):
        http = CheckedSession()
        try:
            yield _WebhookSession(http)
        finally:
            http.close()

    def deliver(self, message, rendered) -> str:
        with self.session() as session:
            return session.deliver(message, rendered)


class _WebhookSession:
    def __init__(self, http):
        self.http = http

    def deliver(self, message, rendered) -> str:
        body = rendered.text.encode() if rendered.text else None
        headers = {
            "User-Agent": USER_AGENT,
            "Idempotency-Key": message.idempotency_key,
            **rendered.headers,
        }
        headers.update(signature_headers(body))
        timeout = settings.WAYMARK_WEBHOOK_TIMEOUT
        try:
            response = self.http.request(
                rendered.method or "POST",
                rendered.url,
                data=body,
                headers=headers,
                timeout=timeout,
                stream=True,
            )
        except ForbiddenAddress as exc:
            raise PermanentDeliveryError(str(exc)) from exc
        except requests.Timeout as exc:
            raise TransientDeliveryError(
                f"The webhook did not answer within {timeout:g} seconds."
            ) from exc
        except requests.RequestException as exc:
            raise TransientDeliveryError(f"Webhook: {type(exc).__name__}: {exc}") from exc
        with response:
            status = response.status_code
            try:
                excerpt = next(response.iter_content(300), b"").decode("utf-8", "replace")
            except requests.RequestException:
                excerpt = ""
        if 200 <= status < 300:
            return ""
        detail = f"The webhook answered {status}"
        if 300 <= status < 400:
            location = response.headers.get("Location", "")
            raise PermanentDeliveryError(
                f"{detail}, a redirect to {location[:200]!r}: redirects are not followed."
            )
        detail += f": {excerpt.strip()[:300]}" if excerpt.strip() else "."
        if status in (408, 429) or status >= 500:
            raise TransientDeliveryError(detail)
        raise PermanentDeliveryError(detail)
