"""Push notifications to apps: Firebase Cloud Messaging (HTTP v1 API), or the
development outbox.

A contact's address is its active device tokens (contacts.models.DeviceToken);
a message goes to each of them. A token FCM says is gone for good is disabled
at once; the message fails as "address rejected" only when every token was.
"""

import json
import logging
import re
from contextlib import contextmanager

import requests
from django.conf import settings
from google.auth import exceptions as google_auth_exceptions
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account

from contacts.models import DeviceToken
from contacts.services import device_tokens_disable
from messaging.backends import AddressRejected, PermanentDeliveryError, TransientDeliveryError
from messaging.backends.base import Backend, Rendered
from messaging.backends.outbox import outbox_write
from messaging.rendering import RenderError, render_string

logger = logging.getLogger(__name__)

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
# Schemes that run code where a link is opened: never a notification's link.
_UNSAFE_SCHEMES = {"javascript", "data", "vbscript", "file"}


def link_problem(url: str, *, web: bool) -> str:
    """Why `url` cannot be a notification's link, or "" when it can.

    Apps open deep links of their own schemes (myapp://orders/17); a browser
    opens http(s) URLs or paths of the site that showed the notification.
    """
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme in _UNSAFE_SCHEMES:
        return f"A {scheme}: link is not allowed."
    if web and not (scheme in ("http", "https") or (not scheme and url.startswith("/"))):
        return "The link must be an http(s) URL or a path starting with /."
    if not web and not scheme:
        return "The link needs a scheme: https://… or the app's own, like myapp://…."
    return ""


def render_notification(template, context, *, web: bool, max_bytes: int | None) -> Rendered:
    """A title, a text and a link: what push, web push and in-app messages show."""
    title = " ".join(render_string(template.title, context, html=False).split())
    text = render_string(template.text_body, context, html=False).strip()
    url = render_string(template.link_url, context, html=False).strip()
    if not text:
        raise RenderError("The notification text rendered empty.")
    if url and (problem := link_problem(url, web=web)):
        raise RenderError(f"{problem} (rendered link: {url[:200]})")
    if max_bytes is not None:
        size = len(json.dumps({"title": title, "body": text, "url": url}).encode())
        if size > max_bytes:
            raise RenderError(
                f"The notification is {size} bytes; at most {max_bytes} fit in a push message."
            )
    return Rendered(title=title, text=text, url=url, links=(url,) if url else ())


def check_notification(template, *, noun: str, web: bool) -> dict:
    errors = {}
    if not template.text_body.strip():
        errors["text_body"] = f"{noun} needs a text body."
    link = template.link_url.strip()
    # A link made by the template ({{ event.url }}) is checked when it renders.
    if link and not link.startswith("{") and (problem := link_problem(link, web=web)):
        errors["link_url"] = problem
    return errors


class TokenRejected(Exception):
    """This one device's token will never work again (the reason says why)."""


class DeviceBase(Backend):
    """What push media share: the contact's active devices of some platforms."""

    platforms: tuple = ()
    template_fields = ("title", "text_body", "link_url")
    web = False
    # Providers take about 4 KB per message; the rest is their envelope.
    max_payload_bytes = 3500

    def active_tokens(self, contact_id):
        return DeviceToken.objects.filter(
            contact_id=contact_id, platform__in=self.platforms, disabled_at__isnull=True
        ).order_by("pk")

    def address_for(self, contact) -> str:
        count = self.active_tokens(contact.pk).count()
        if not count:
            return ""
        return f"{count} device{'s' if count != 1 else ''}"

    def check_template(self, template) -> dict:
        return check_notification(template, noun="A push notification", web=self.web)

    def render(self, template, context, *, links=None) -> Rendered:
        return render_notification(
            template, context, web=self.web, max_bytes=self.max_payload_bytes
        )

    def deliver_to_devices(self, message, send_one) -> str:
        """Call `send_one(device_token)` for each of the contact's active devices.

        `send_one` returns the provider's id, or raises TokenRejected,
        TransientDeliveryError or PermanentDeliveryError. Once any device has
        the message it counts as sent (trying again would give the others a
        second copy); otherwise a transient failure is retried, with the
        rejected devices already disabled.
        """
        tokens = list(self.active_tokens(message.contact_id))
        if not tokens:
            raise AddressRejected("The contact has no active device any more.")
        sent, rejected, transient, permanent = [], [], [], []
        for token in tokens:
            try:
                sent.append(send_one(token) or "")
            except TokenRejected as exc:
                device_tokens_disable(ids=[token.pk], reason=str(exc))
                rejected.append(f"{token.get_platform_display()} device {token.pk}: {exc}")
            except TransientDeliveryError as exc:
                transient.append(f"device {token.pk}: {exc}")
            except PermanentDeliveryError as exc:
                permanent.append(f"device {token.pk}: {exc}")
        if sent:
            if rejected or transient or permanent:
                logger.warning(
                    "message %s reached %d of %d devices: %s",
                    message.pk,
                    len(sent),
                    len(tokens),
                    "; ".join(rejected + transient + permanent),
                )
            return next((provider_id for provider_id in sent if provider_id), "")
        if transient:
            raise TransientDeliveryError("; ".join(transient + permanent + rejected))
        if permanent:
            raise PermanentDeliveryError("; ".join(permanent + rejected))
        raise AddressRejected(
            "Every device was rejected: " + "; ".join(rejected), address=message.to_address
        )


class PushBase(DeviceBase):
    medium = "push"
    platforms = (DeviceToken.Platform.ANDROID, DeviceToken.Platform.IOS)


# --- Firebase Cloud Messaging ---------------------------------------------------------

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def _fcm_error(response) -> tuple[str, str]:
    """(FCM error code, message) of an error response."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", response.text[:300]
    code = error.get("status") or ""
    for detail in error.get("details") or []:
        if str(detail.get("@type", "")).endswith("google.firebase.fcm.v1.FcmError"):
            code = detail.get("errorCode") or code
    return code, str(error.get("message") or "")


def _about_the_token(response, message: str) -> bool:
    """Whether an INVALID_ARGUMENT is about the token rather than the message:
    a message too big or badly formed must not cost a contact their devices."""
    if "registration token" in message.lower():
        return True
    try:
        details = response.json()["error"].get("details") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return any(
        violation.get("field") == "message.token"
        for detail in details
        for violation in detail.get("fieldViolations") or []
    )


class FcmBackend(PushBase):
    """FCM's HTTP v1 API, authorised with a service account's OAuth2 token.

    FCM_CREDENTIALS_FILE is the service account's JSON key; its token_uri is
    where the access token comes from, and FCM_API_URL where messages go.
    """

    def __init__(self):
        super().__init__()
        self._credentials = None  # (path, google.oauth2 credentials), shared by the process

    def credentials(self):
        path = settings.FCM_CREDENTIALS_FILE
        if not path:
            raise PermanentDeliveryError("FCM is not set up: set FCM_CREDENTIALS_FILE.")
        if self._credentials is None or self._credentials[0] != path:
            try:
                credentials = service_account.Credentials.from_service_account_file(
                    path, scopes=[FCM_SCOPE]
                )
            except (OSError, ValueError, KeyError) as exc:
                raise PermanentDeliveryError(
                    f"Could not read the FCM credentials in {path}: {exc}"
                ) from exc
            self._credentials = (path, credentials)
        return self._credentials[1]

    @contextmanager
    def session(self):
        try:
            credentials, error = self.credentials(), None
        except PermanentDeliveryError as exc:
            credentials, error = None, exc
        if error is not None:
            # Reported per message, so each records why it was not sent.
            yield _BrokenSession(error)
            return
        http = AuthorizedSession(credentials)
        try:
            yield _FcmSession(self, http)
        finally:
            http.close()

    def deliver(self, message, rendered) -> str:
        with self.session() as session:
            return session.deliver(message, rendered)


class _BrokenSession:
    def __init__(self, error):
        self.error = error

    def deliver(self, message, rendered):
        raise PermanentDeliveryError(str(self.error))


class _FcmSession:
    def __init__(self, backend, http):
        self.backend = backend
        self.http = http

    def deliver(self, message, rendered) -> str:
        credentials = self.backend.credentials()
        project = settings.FCM_PROJECT_ID or credentials.project_id
        if not project:
            raise PermanentDeliveryError("FCM has no project: set FCM_PROJECT_ID.")
        url = f"{settings.FCM_API_URL}/v1/projects/{project}/messages:send"
        notification = {"body": rendered.text}
        if rendered.title:
            notification["title"] = rendered.title
        data = {"waymark_message_id": str(message.pk)}
        if rendered.url:
            data["url"] = rendered.url

        def send_one(token):
            body = {"message": {"token": token.token, "notification": notification, "data": data}}
            return self._send(url, body)

        return self.backend.deliver_to_devices(message, send_one)

    def _send(self, url, body) -> str:
        try:
            response = self.http.post(url, json=body, timeout=settings.WAYMARK_PROVIDER_TIMEOUT)
        except google_auth_exceptions.RefreshError as exc:
            error = f"FCM could not get an access token: {exc}"
            if getattr(exc, "retryable", False):
                raise TransientDeliveryError(error) from exc
            raise PermanentDeliveryError(error) from exc
        except (google_auth_exceptions.TransportError, requests.RequestException) as exc:
            raise TransientDeliveryError(f"FCM: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 200:
            try:
                return str(response.json().get("name") or "")
            except (ValueError, AttributeError):
                return ""
        code, text = _fcm_error(response)
        detail = f"FCM answered {response.status_code} {code}: {text}".strip()
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientDeliveryError(detail)
        if code in ("UNREGISTERED", "SENDER_ID_MISMATCH"):
            raise TokenRejected(detail)
        if code == "INVALID_ARGUMENT" and _about_the_token(response, text):
            raise TokenRejected(detail)
        raise PermanentDeliveryError(detail)


# --- Development outbox ---------------------------------------------------------------


class PushOutboxBackend(PushBase):
    """Writes each push notification, with the devices it would go to, to
    WAYMARK_OUTBOX_DIR/push.jsonl instead of sending it."""

    def deliver(self, message, rendered) -> str:
        tokens = list(self.active_tokens(message.contact_id))
        if not tokens:
            raise AddressRejected("The contact has no active device any more.")
        devices = [{"platform": token.platform, "token": token.token} for token in tokens]
        return outbox_write(
            medium=self.medium,
            message=message,
            to=message.to_address,
            content={
                "title": rendered.title,
                "text": rendered.text,
                "url": rendered.url,
                "devices": devices,
            },
        )
