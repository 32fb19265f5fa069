"""Web push to browsers (the Push API), signed with the VAPID keys in settings,
or the development outbox.

Browsers' subscriptions are DeviceToken rows of platform "web" (the token is
the endpoint; `subscription` holds the endpoint and keys). The payload the
site's service worker receives is JSON: {"title", "body", "url",
"message_id"}. Endpoints come from browsers, so they are called through
the same guard as webhooks: never an internal address.
"""

import base64
import binascii
import json
from contextlib import contextmanager
from functools import cache

import requests
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from py_vapid import Vapid, VapidException
from pywebpush import WebPushException, webpush

from contacts.models import DeviceToken
from messaging.backends import AddressRejected, PermanentDeliveryError, TransientDeliveryError
from messaging.backends.outbox import outbox_write
from messaging.backends.push import DeviceBase, TokenRejected, check_notification
from messaging.backends.safehttp import CheckedSession, ForbiddenAddress


@cache
def _vapid(private_key: str):
    return Vapid.from_string(private_key)


class WebPushBase(DeviceBase):
    medium = "web_push"
    platforms = (DeviceToken.Platform.WEB,)
    web = True
    # 4096 bytes reach the browser after encryption (about 100 bytes of it).
    max_payload_bytes = 3800

    def check_template(self, template) -> dict:
        return check_notification(template, noun="A web push notification", web=True)


class WebPushBackend(WebPushBase):
    """Web push through each browser's push service."""

    @contextmanager
    def session(self):
        http = CheckedSession()
        try:
            yield _WebPushSession(self, http)
        finally:
            http.close()

    def deliver(self, message, rendered) -> str:
        with self.session() as session:
            return session.deliver(message, rendered)


def _vapid_key():
    private_key, subject = settings.VAPID_PRIVATE_KEY, settings.VAPID_SUBJECT
    if not private_key or not subject:
        raise PermanentDeliveryError(
            "Web push is not set up: set VAPID_PRIVATE_KEY, VAPID_PUBLIC_KEY and VAPID_SUBJECT "
            "(manage.py generate_vapid_keys makes a key pair)."
        )
    if not subject.startswith(("mailto:", "https://")):
        raise PermanentDeliveryError(
            f"VAPID_SUBJECT must be a mailto: or https: URL, not {subject!r}."
        )
    try:
        return _vapid(private_key)
    except (VapidException, ValueError, TypeError) as exc:
        raise PermanentDeliveryError(f"VAPID_PRIVATE_KEY is not a VAPID key: {exc}") from exc


def _b64url_decode(text) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not a string")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _subscription_problem(subscription) -> str:
    """Why a stored browser subscription cannot be sent to, or ""."""
    keys = subscription.get("keys") or {}
    if not subscription.get("endpoint"):
        return "The stored subscription has no endpoint."
    try:
        p256dh, auth = _b64url_decode(keys.get("p256dh")), _b64url_decode(keys.get("auth"))
        # The browser's P-256 public key (an uncompressed point) and its auth secret.
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except (ValueError, TypeError, binascii.Error) as exc:
        return f"The subscription's keys cannot be used to encrypt: {exc}"
    if len(auth) != 16:
        return "The subscription's auth secret is not 16 bytes."
    return ""


class _WebPushSession:
    def __init__(self, backend, http):
        self.backend = backend
        self.http = http

    def deliver(self, message, rendered) -> str:
        vapid = _vapid_key()
        payload = json.dumps(
            {
                "title": rendered.title,
                "body": rendered.text,
                "url": rendered.url,
                "message_id": message.pk,
            }
        )

        def send_one(token):
            return self._send(token, payload, vapid)

        return self.backend.deliver_to_devices(message, send_one)

    def _send(self, token, payload, vapid) -> str:
        subscription = token.subscription or {}
        if problem := _subscription_problem(subscription):
            raise TokenRejected(problem)
        try:
            response = webpush(
                subscription_info=subscription,
                data=payload,
                vapid_private_key=vapid,
                # A fresh dict each time: webpush() writes the audience and expiry into it.
                vapid_claims={"sub": settings.VAPID_SUBJECT},
                ttl=settings.WAYMARK_WEB_PUSH_TTL,
                timeout=settings.WAYMARK_PROVIDER_TIMEOUT,
                requests_session=self.http,
            )
        except ForbiddenAddress as exc:
            raise TokenRejected(str(exc)) from exc
        except WebPushException as exc:
            raise self._error(exc) from exc
        except requests.RequestException as exc:
            raise TransientDeliveryError(f"Push service: {type(exc).__name__}: {exc}") from exc
        return response.headers.get("Location", "")

    def _error(self, exc):
        response = exc.response
        status = getattr(response, "status_code", None)
        body = (getattr(response, "text", "") or "")[:300]
        detail = f"The push service answered {status}: {body}".strip()
        if status in (404, 410):
            # The browser unsubscribed, or the subscription expired.
            return TokenRejected(detail)
        if status is None or status == 429 or status >= 500:
            return TransientDeliveryError(detail)
        return PermanentDeliveryError(detail)


class WebPushOutboxBackend(WebPushBase):
    """Writes each web push notification, with the browsers it would go to,
    to WAYMARK_OUTBOX_DIR/web_push.jsonl instead of sending it."""

    def deliver(self, message, rendered) -> str:
        tokens = list(self.active_tokens(message.contact_id))
        if not tokens:
            raise AddressRejected("The contact has no active browser any more.")
        return outbox_write(
            medium=self.medium,
            message=message,
            to=message.to_address,
            content={
                "title": rendered.title,
                "text": rendered.text,
                "url": rendered.url,
                "devices": [token.token for token in tokens],
            },
        )
