"""Signed links to the subscriber's pages.

Each token names one contact (and, for unsubscribe and confirmation, one
message type), is signed with SECRET_KEY under a salt of its own purpose,
and so can neither be forged, nor guessed from an id or an address, nor
used for another purpose.
"""

from django.conf import settings
from django.core import signing

PREFERENCES_SALT = "waymark.subscriptions.preferences"
UNSUBSCRIBE_SALT = "waymark.subscriptions.unsubscribe"
CONFIRMATION_SALT = "waymark.subscriptions.confirmation"


class BadToken(ValueError):
    """Anything wrong with a token: tampered, truncated, of another purpose or site."""


class ExpiredToken(BadToken):
    """An authentic confirmation token past its age: it still names its contact,
    so the page can offer that contact's preference center."""

    def __init__(self, contact_id: int, message_type_id: int):
        super().__init__("This link has expired.")
        self.contact_id = contact_id
        self.message_type_id = message_type_id


def _sign(salt, *values):
    return signing.Signer(salt=salt).sign_object(list(values), compress=True)


def _unsign(salt, token, *, max_age=None):
    try:
        if max_age is None:
            return signing.Signer(salt=salt).unsign_object(token)
        return signing.TimestampSigner(salt=salt).unsign_object(token, max_age=max_age)
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise BadToken("This link is not valid.") from exc


def preferences_token(contact) -> str:
    return _sign(PREFERENCES_SALT, contact.pk)


def unsubscribe_token(contact, message_type) -> str:
    return _sign(UNSUBSCRIBE_SALT, contact.pk, message_type.pk)


def confirmation_token(contact, message_type) -> str:
    return signing.TimestampSigner(salt=CONFIRMATION_SALT).sign_object(
        [contact.pk, message_type.pk], compress=True
    )


# The paths subscriptions.urls serves, mounted at the site root. Links go out
# in messages for years, so these never change.
def preferences_url(contact) -> str:
    return f"{settings.SITE_URL}/preferences/{preferences_token(contact)}/"


def unsubscribe_url(contact, message_type) -> str:
    """The RFC 8058 one-click target for this contact and message type."""
    return f"{settings.SITE_URL}/unsubscribe/{unsubscribe_token(contact, message_type)}/"


def confirmation_url(contact, message_type) -> str:
    return f"{settings.SITE_URL}/confirm/{confirmation_token(contact, message_type)}/"


def _ids(values, count):
    if not isinstance(values, list) or len(values) != count:
        raise BadToken("This link is not valid.")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise BadToken("This link is not valid.")
    return values


def contact_id_from_preferences_token(token) -> int:
    (contact_id,) = _ids(_unsign(PREFERENCES_SALT, token), 1)
    return contact_id


def ids_from_unsubscribe_token(token) -> tuple[int, int]:
    contact_id, message_type_id = _ids(_unsign(UNSUBSCRIBE_SALT, token), 2)
    return contact_id, message_type_id


def ids_from_confirmation_token(token) -> tuple[int, int]:
    """The contact and message type a confirmation token names.

    Raises ExpiredToken once WAYMARK_CONFIRMATION_MAX_AGE has passed since it
    was made, BadToken for anything else wrong.
    """
    try:
        values = _unsign(CONFIRMATION_SALT, token, max_age=settings.WAYMARK_CONFIRMATION_MAX_AGE)
    except BadToken as exc:
        if not isinstance(exc.__cause__, signing.SignatureExpired):
            raise
        # Authentic but old: the signature held, only the age did not.
        authentic = signing.TimestampSigner(salt=CONFIRMATION_SALT).unsign_object(token)
        contact_id, message_type_id = _ids(authentic, 2)
        raise ExpiredToken(contact_id, message_type_id) from None
    contact_id, message_type_id = _ids(values, 2)
    return contact_id, message_type_id
