"""Device tokens for push and web push."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from contacts.models import Contact, DeviceToken


class DeviceTokenError(ValueError):
    pass


@dataclass(frozen=True)
class DeviceTokenRegistration:
    device_token: DeviceToken
    created: bool


def _web_push_endpoint(subscription) -> str:
    if not isinstance(subscription, dict):
        raise DeviceTokenError(
            "A browser registers its push subscription: an object with endpoint and keys."
        )
    endpoint = subscription.get("endpoint")
    keys = subscription.get("keys")
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        raise DeviceTokenError("The push subscription's endpoint must be an http(s) URL.")
    if not isinstance(keys, dict) or not all(
        isinstance(keys.get(name), str) and keys.get(name) for name in ("p256dh", "auth")
    ):
        raise DeviceTokenError("The push subscription needs its keys: p256dh and auth.")
    return endpoint


def device_token_register(
    *,
    contact: Contact,
    platform: str,
    token: str = "",
    app_id: str = "",
    subscription: dict | None = None,
) -> DeviceTokenRegistration:
    """Record that `contact` receives push notifications on a device.

    An app sends its FCM registration token (`platform` ios or android); a
    browser sends its web push subscription (`platform` web, `subscription`
    as PushSubscription.toJSON() gives it; its endpoint is the token).

    Registering again is how an app says a token is still in use: the token
    is marked seen now and enabled again if it had been disabled. A token
    registered by another contact moves to this one, since a device belongs
    to whoever last signed in on it. Raises DeviceTokenError for bad input.
    """
    if platform not in DeviceToken.Platform.values:
        choices = ", ".join(DeviceToken.Platform.values)
        raise DeviceTokenError(f"Unknown platform {platform!r}: one of {choices}.")
    if platform == DeviceToken.Platform.WEB:
        token = _web_push_endpoint(subscription)
        subscription = {"endpoint": token, "keys": dict(subscription["keys"])}
    elif subscription is not None:
        raise DeviceTokenError("Only a browser (platform web) registers a push subscription.")
    token = (token or "").strip()
    if not token:
        raise DeviceTokenError("The device token is empty.")
    max_length = DeviceToken._meta.get_field("token").max_length
    if len(token) > max_length or any(character.isspace() for character in token):
        raise DeviceTokenError(
            f"That is not a device token (at most {max_length} characters, no spaces)."
        )
    with transaction.atomic():
        device_token, created = DeviceToken.objects.update_or_create(
            token=token,
            defaults={
                "contact": contact,
                "platform": platform,
                "app_id": (app_id or "").strip()[:255],
                "subscription": subscription,
                "last_seen_at": timezone.now(),
                "disabled_at": None,
                "disabled_reason": "",
            },
        )
    return DeviceTokenRegistration(device_token=device_token, created=created)


def device_tokens_disable(*, ids, reason: str) -> int:
    """Stop sending to these devices (a provider said they will never work
    again, or staff said so). Returns how many were active until now."""
    return DeviceToken.objects.filter(pk__in=list(ids), disabled_at__isnull=True).update(
        disabled_at=timezone.now(), disabled_reason=reason[:255]
    )
