"""Delivery backends: one class per medium, chosen in settings.

`settings.WAYMARK_BACKENDS` maps each medium (subscriptions.models.Channel.Medium)
to the dotted path of a `Backend` subclass, the way healthchecks keeps its
TRANSPORTS. The sending pipeline (messaging.services) asks the backend of a
message's medium for everything that differs between media: the address it
needs from a contact, how a template renders, checks and previews, and how a
rendered message is delivered. The pipeline itself never branches on medium.

A backend raises TransientDeliveryError when trying again later may work
(server down, 4xx, rate limited) and PermanentDeliveryError when it will not
(5xx, address refused). AddressRejected is a PermanentDeliveryError that
also says the address itself is bad (a push token the provider no longer
knows), so the pipeline can stop using it. `address_for` raises
InvalidAddress for an address that is malformed before anything is sent.
"""

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


class DeliveryError(Exception):
    pass


class TransientDeliveryError(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass


class InvalidAddress(Exception):
    """The contact's address for this medium is malformed (say, a phone number
    that is not a number): raised by `address_for`, recorded as a skip."""


class AddressRejected(PermanentDeliveryError):
    """The provider says this address will never work (e.g. an unregistered token)."""

    def __init__(self, message, *, address=""):
        super().__init__(message)
        self.address = address


@cache
def get_backend(medium: str):
    """The configured backend instance for `medium` (one per process)."""
    try:
        path = settings.WAYMARK_BACKENDS[medium]
    except KeyError:
        raise ImproperlyConfigured(
            f"No delivery backend for the {medium!r} medium in WAYMARK_BACKENDS."
        ) from None
    backend_class = import_string(path)
    return backend_class()


def reset_backends():
    """Forget the backend instances (after settings change, in tests)."""
    get_backend.cache_clear()
