"""Write paths for contacts: finding and creating them."""

from django.db import IntegrityError, transaction

from contacts.models import Contact


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
