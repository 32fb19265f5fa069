"""Write paths of the contacts app, one module per subject; import from here."""

from contacts.services.api_keys import (
    API_KEY_CACHE_SECONDS,
    api_key_authenticate,
    api_key_create,
    api_key_revoke,
)
from contacts.services.contacts import ContactLookupError, contact_find, contact_get_or_create
from contacts.services.devices import (
    DeviceTokenError,
    DeviceTokenRegistration,
    device_token_register,
    device_tokens_disable,
)
from contacts.services.events import (
    Dispatched,
    EventIdConflict,
    TrackedEvent,
    event_record,
    event_track,
    events_dispatch,
    events_dispatch_all,
    events_dispatch_soon,
)

__all__ = [
    "API_KEY_CACHE_SECONDS",
    "ContactLookupError",
    "DeviceTokenError",
    "DeviceTokenRegistration",
    "Dispatched",
    "EventIdConflict",
    "TrackedEvent",
    "api_key_authenticate",
    "api_key_create",
    "api_key_revoke",
    "contact_find",
    "contact_get_or_create",
    "device_token_register",
    "device_tokens_disable",
    "event_record",
    "event_track",
    "events_dispatch",
    "events_dispatch_all",
    "events_dispatch_soon",
]
