"""API keys: created once, stored hashed, revocable."""

import hashlib
import secrets
import time

from django.utils import timezone

from contacts.models import ApiKey


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
