"""Erasing a contact's personal data: forgetting (GDPR) and deleting."""

import uuid
from dataclasses import dataclass

from django.db import transaction

from contacts.models import Contact, DeviceToken, Event, ForgottenAddress, ListMembership
from contacts.signals import contact_forgetting


@dataclass(frozen=True)
class Forgotten:
    """A forgotten contact: `contact_id` is the anonymous row left in its place
    (None when no contact had the address), `digests` the addresses now
    never contacted again."""

    contact_id: int | None
    digests: tuple[str, ...]


def addresses_forget(
    *, email: str | None = None, phone: str | None = None, source: str, requested_by: str = ""
) -> tuple[str, ...]:
    """Record the digests of an email address and a phone number (either may be
    missing), so the send-time check refuses them from now on. Idempotent."""
    entries = [
        ForgottenAddress(
            digest=ForgottenAddress.digest_of(address),
            kind=kind,
            source=source,
            requested_by=requested_by[:255],
        )
        for kind, address in (
            (ForgottenAddress.Kind.EMAIL, email),
            (ForgottenAddress.Kind.PHONE, phone),
        )
        if address and address.strip()
    ]
    ForgottenAddress.objects.bulk_create(entries, ignore_conflicts=True)
    return tuple(entry.digest for entry in entries)


def contact_forget(*, contact: Contact, actor=None, source: str) -> Forgotten:
    """Erase a contact's personal data and never contact its addresses again.

    In one transaction, with the contact's row locked: the digests of its email
    and phone are recorded (ForgottenAddress); apps above erase their rows
    (signals.contact_forgetting: consent records and subscriptions deleted,
    messages kept for aggregate metrics but without address, subject or data,
    journey passages ended); its events, devices and list memberships are
    deleted; and the row itself stays, anonymised and blocklisted, so the send
    log and journey metrics still count it. `source` says who asked ("api",
    "admin"), `actor` names them: an API key's name or a staff user.
    """
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        digests = addresses_forget(
            email=contact.email,
            phone=contact.phone,
            source=source,
            requested_by=str(actor or ""),
        )
        _erase(contact, forget=True, source=source)
        contact.email = None
        contact.user_id = f"forgotten:{uuid.uuid4().hex}"
        contact.phone = ""
        contact.timezone = ""
        contact.locale = ""
        contact.attributes = {}
        contact.blocklisted = True
        contact.save()
    return Forgotten(contact_id=contact.pk, digests=digests)


def contact_delete(*, contact: Contact, actor=None, source: str) -> int:
    """Delete a contact and everything kept about it, its messages included.

    Unlike contact_forget, nothing stops the address from coming back (Iterable's
    DELETE /api/users/...: "does not prevent future data collection"). Apps
    above erase their rows first (signals.contact_forgetting), so rows their
    admins never let staff delete one by one (the consent ledger, the send
    log) go through them. Returns the deleted contact's id.
    """
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        _erase(contact, forget=False, source=source)
        contact_id = contact.pk
        contact.delete()
    return contact_id


def _erase(contact, *, forget, source):
    contact_forgetting.send(sender=Contact, contact=contact, forget=forget, source=source)
    Event.objects.filter(contact=contact).delete()
    DeviceToken.objects.filter(contact=contact).delete()
    ListMembership.objects.filter(contact=contact).delete()
