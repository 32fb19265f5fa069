"""Write paths for contacts and events."""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts.models import ApiKey, Contact, Event
from contacts.signals import event_recorded


class ContactLookupError(ValueError):
    pass


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
    re-deliver safely; listeners only react to new events. Everything,
    listeners' writes included, is one transaction.
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
    """Record an event for a known contact and tell listeners; see event_track."""
    data = data or {}
    occurred_at = occurred_at or timezone.now()
    client_event_id = client_event_id or uuid.uuid4().hex
    # No savepoint: nothing here is worth keeping apart from the caller's transaction.
    with transaction.atomic(savepoint=False):
        fields = {
            "contact": contact,
            "name": name,
            "data": data,
            "occurred_at": occurred_at,
            "campaign_id": campaign_id,
            "template_id": template_id,
        }
        event, created = Event.objects.select_for_update().update_or_create(
            client_event_id=client_event_id, defaults=fields
        )
        event_recorded.send(sender=Event, event=event, created=created)
    return TrackedEvent(event=event, created=created)


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


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Marks it used (at most once a minute)."""
    if not raw_key:
        return None
    api_key = ApiKey.objects.filter(key_hash=_digest(raw_key), revoked_at__isnull=True).first()
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key
