"""Write paths for contacts and events."""

import hashlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts.models import ApiKey, Contact, DeviceToken, Event
from contacts.redis import default_queue, redis_client
from contacts.signals import events_recorded

logger = logging.getLogger(__name__)


class ContactLookupError(ValueError):
    pass


def contact_find(*, email: str | None = None, user_id: str | None = None) -> Contact | None:
    """The contact a request names by email or, when no email is given, by userId."""
    email = (email or "").strip().lower() or None
    user_id = (user_id or "").strip() or None
    if email:
        return Contact.objects.filter(email=email).first()
    if user_id:
        return Contact.objects.filter(user_id=user_id).first()
    return None


def contact_get_or_create(
    *, email: str | None = None, user_id: str | None = None
) -> tuple[Contact, bool]:
    """Find the contact by email or user id, creating it when neither is known.

    Iterable's rule: a request names a user by email or by userId; an unknown
    user is created on first contact.
    """
    email = (email or "").strip().lower() or None
    user_id = (user_id or "").strip() or None
    if not email and not user_id:
        raise ContactLookupError("Either email or userId is required.")
    lookup = {"email": email} if email else {"user_id": user_id}
    contact = Contact.objects.filter(**lookup).first()
    if contact:
        return contact, False
    try:
        with transaction.atomic():
            return Contact.objects.create(email=email, user_id=user_id), True
    except IntegrityError:
        # Created concurrently, or the user id already belongs to another email.
        contact = Contact.objects.filter(**lookup).first()
        if contact is None:
            raise ContactLookupError("That userId already belongs to another contact.") from None
        return contact, False


@dataclass(frozen=True)
class TrackedEvent:
    event: Event
    created: bool


def event_track(
    *,
    name: str,
    email: str | None = None,
    user_id: str | None = None,
    data: dict | None = None,
    occurred_at: datetime | None = None,
    client_event_id: str | None = None,
    campaign_id: int | None = None,
    template_id: int | None = None,
) -> TrackedEvent:
    """Record an event for a contact (created if new) and tell listeners.

    Every event gets an id (the client's, or a new one); a repeated id
    updates the stored event instead of adding one, so integrators may
    re-deliver safely. Listeners (journeys) hear of new events only, after
    this commits, in batches: see event_record.
    """
    with transaction.atomic():
        contact, _ = contact_get_or_create(email=email, user_id=user_id)
        return event_record(
            contact=contact,
            name=name,
            data=data,
            occurred_at=occurred_at,
            client_event_id=client_event_id,
            campaign_id=campaign_id,
            template_id=template_id,
        )


class EventIdConflict(ValueError):
    """The client's event id names an event of another contact."""


def event_record(
    *,
    contact: Contact,
    name: str,
    data: dict | None = None,
    occurred_at: datetime | None = None,
    client_event_id: str | None = None,
    campaign_id: int | None = None,
    template_id: int | None = None,
) -> TrackedEvent:
    """Record an event for a known contact; see event_track.

    Listeners hear of new events shortly after this commits, in batches
    (events_dispatch), never inside it: a listener's failure cannot fail
    the caller. A client's event id seen before updates that event, if it is
    this contact's, and raises EventIdConflict if it is another's.
    """
    data = data or {}
    occurred_at = occurred_at or timezone.now()
    # An id made here is new: there is nothing stored under it to update.
    known_id = bool(client_event_id)
    client_event_id = client_event_id or uuid.uuid4().hex
    fields = {
        "contact": contact,
        "name": name,
        "data": data,
        "occurred_at": occurred_at,
        "campaign_id": campaign_id,
        "template_id": template_id,
    }
    # No savepoint: nothing here is worth keeping apart from the caller's transaction.
    with transaction.atomic(savepoint=False):
        event = (
            Event.objects.select_for_update().filter(client_event_id=client_event_id).first()
            if known_id
            else None
        )
        if event is not None:
            if event.contact_id != contact.pk:
                raise EventIdConflict(
                    f"The event id {client_event_id!r} belongs to another user's event."
                )
            for field, value in fields.items():
                setattr(event, field, value)
            event.save(update_fields=[*fields])
            return TrackedEvent(event=event, created=False)
        if not known_id:
            # A fresh id cannot collide: no savepoint to guard the insert.
            event = Event.objects.create(client_event_id=client_event_id, **fields)
            transaction.on_commit(events_dispatch_soon)
            return TrackedEvent(event=event, created=True)
        try:
            with transaction.atomic():
                event = Event.objects.create(client_event_id=client_event_id, **fields)
        except IntegrityError:
            # The same id stored concurrently: that one stands, updated with this.
            return event_record(
                contact=contact,
                name=name,
                data=data,
                occurred_at=occurred_at,
                client_event_id=client_event_id,
                campaign_id=campaign_id,
                template_id=template_id,
            )
        transaction.on_commit(events_dispatch_soon)
    return TrackedEvent(event=event, created=True)


# While set, a dispatch job is queued or running: more events need no job of their own.
_DISPATCH_SCHEDULED = "waymark:events-dispatch-scheduled"


def events_dispatch_soon():
    """Have new events dispatched by a worker within moments, one job at a time.

    Many requests a second share one job: the first to find none scheduled
    enqueues it. Should Redis lose it, the scheduler's pass dispatches
    whatever is left (events are marked in the database, not in Redis).
    """
    if redis_client().set(_DISPATCH_SCHEDULED, 1, nx=True, ex=5):
        from contacts.tasks import contacts_dispatch_events_task

        default_queue().enqueue(contacts_dispatch_events_task)


@dataclass(frozen=True)
class Dispatched:
    events: int
    # Events whose listeners raised even on their own: stored, marked, and logged.
    failed: int = 0


def events_dispatch(*, limit: int = 1000) -> Dispatched:
    """Hand up to `limit` new events to listeners (events_recorded), oldest first.

    One transaction claims them (skipping any another dispatcher holds),
    lets the listeners act on the whole batch, and marks them dispatched. If
    the listeners fail on the batch, each event is retried alone, and an
    event that still fails is marked dispatched and logged rather than
    blocking every event after it.
    """
    with transaction.atomic():
        events = list(
            Event.objects.select_for_update(skip_locked=True)
            .filter(dispatched=False)
            .order_by("pk")[:limit]
        )
        if not events:
            return Dispatched(events=0)
        failed = 0
        try:
            with transaction.atomic():
                events_recorded.send(sender=Event, events=events)
        except Exception:
            logger.exception("event listeners failed on a batch; retrying one by one")
            for event in events:
                try:
                    with transaction.atomic():
                        events_recorded.send(sender=Event, events=[event])
                except Exception:
                    failed += 1
                    logger.exception("event listeners failed on event %s", event.pk)
        Event.objects.filter(pk__in=[e.pk for e in events]).update(dispatched=True)
    return Dispatched(events=len(events), failed=failed)


def events_dispatch_all(*, limit: int = 1000) -> int:
    """Dispatch batches until none is left; how many events were dispatched."""
    # Cleared first: events stored from now on schedule a job of their own.
    redis_client().delete(_DISPATCH_SCHEDULED)
    total = 0
    while True:
        batch = events_dispatch(limit=limit)
        total += batch.events
        if batch.events < limit:
            return total


def _digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(
    *, name: str, created_by=None, scope: str = ApiKey.Scope.SERVER
) -> tuple[ApiKey, str]:
    """Create an API key; the raw key is returned once and never stored."""
    raw_key = "wm_" + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        name=name,
        scope=scope,
        prefix=raw_key[:10],
        key_hash=_digest(raw_key),
        created_by=created_by,
    )
    return api_key, raw_key


# Keys seen in the last few seconds, by digest: the API then answers without a
# query for the key. A revocation takes effect in this process at once and in
# the others within API_KEY_CACHE_SECONDS.
API_KEY_CACHE_SECONDS = 5
_recent_keys: dict[str, tuple[float, ApiKey]] = {}


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Marks it used (at most once a minute)."""
    if not raw_key:
        return None
    digest = _digest(raw_key)
    recent = _recent_keys.get(digest)
    if recent is not None and recent[0] > time.monotonic():
        return recent[1]
    api_key = ApiKey.objects.filter(key_hash=digest, revoked_at__isnull=True).first()
    if api_key is None:
        _recent_keys.pop(digest, None)
        return None
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    if len(_recent_keys) > 10_000:  # many keys: start over rather than grow
        _recent_keys.clear()
    _recent_keys[digest] = (time.monotonic() + API_KEY_CACHE_SECONDS, api_key)
    return api_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    _recent_keys.clear()
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


# --- Device tokens (push and web push) --------------------------------------------


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
