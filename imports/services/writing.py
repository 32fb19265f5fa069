"""Writing one chunk of good rows: contacts upserted, members added to the
list, consent changed with a ledger entry each, all set-based and in one
transaction, whatever the chunk's size."""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from contacts.models import Contact, ListMembership
from contacts.services.lists import memberships_add
from contacts.sql import update_from_values
from imports.parsing import BadRow
from subscriptions.models import ConsentSource
from subscriptions.services.batch import Catalogue, ConsentBatch
from subscriptions.services.consent import ConsentError

_WRITTEN_FIELDS = ["email", "user_id", "phone", "attributes", "updated_at"]
# A chunk that loses a race (another request created one of its contacts
# between the lookup and the insert) is written again: the second lookup sees it.
_ATTEMPTS = 3


@dataclass(frozen=True)
class ChunkWritten:
    created: int
    updated: int
    joined: int
    consent_changes: int
    bad: list  # BadRow: rows found unusable only now (a conflict with a stored contact)


@dataclass(frozen=True)
class Known:
    """The stored contacts a chunk names, by email and by userId."""

    by_email: dict
    by_user_id: dict

    @classmethod
    def lookup(cls, rows, *, lock=False):
        emails = {row.email for row in rows if row.email}
        user_ids = {row.user_id for row in rows if row.user_id}
        if not emails and not user_ids:
            return cls({}, {})
        found = Contact.objects.filter(Q(email__in=emails) | Q(user_id__in=user_ids))
        if lock:
            found = found.select_for_update().order_by("pk")
        by_email, by_user_id = {}, {}
        for contact in found.only("pk", "email", "user_id", "phone", "attributes"):
            if contact.email:
                by_email[contact.email] = contact
            if contact.user_id:
                by_user_id[contact.user_id] = contact
        return cls(by_email, by_user_id)

    def resolve(self, row) -> Contact | BadRow | None:
        """The stored contact `row` names, None for a new one, or a BadRow when
        its email and userId point at different people."""
        by_email = self.by_email.get(row.email) if row.email else None
        by_user_id = self.by_user_id.get(row.user_id) if row.user_id else None
        if by_email and by_user_id and by_email.pk != by_user_id.pk:
            return BadRow(
                row.line,
                "conflict",
                f"the email {row.email} and the userId {row.user_id} belong to two "
                "different contacts.",
            )
        if by_email and row.user_id and by_email.user_id not in (None, row.user_id):
            return BadRow(
                row.line,
                "conflict",
                f"the email {row.email} belongs to a contact with another userId.",
            )
        if by_user_id and row.email and by_user_id.email not in (None, row.email):
            return BadRow(
                row.line,
                "conflict",
                f"the userId {row.user_id} belongs to a contact with another email address.",
            )
        return by_email or by_user_id


def chunk_write(*, rows, contact_list_id: int, import_id: int, catalogue=None) -> ChunkWritten:
    """Upsert the contacts `rows` name, add them to the list and apply their
    consent columns (ledger source "import"), in one transaction.

    A constant number of queries per chunk: one lookup under lock, one insert,
    one update, two for memberships, and a few for consent when there are
    consent columns. Attributes are merged into what is stored; an empty cell
    never clears anything.
    """
    for attempt in range(_ATTEMPTS):
        try:
            with transaction.atomic():
                return _write_once(rows, contact_list_id, import_id, catalogue)
        except IntegrityError:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _write_once(rows, contact_list_id, import_id, catalogue):
    now = timezone.now()
    known = Known.lookup(rows, lock=True)
    bad, new, changed, contact_of = [], [], {}, []
    for row in rows:
        contact = known.resolve(row)
        if isinstance(contact, BadRow):
            bad.append(contact)
            continue
        if contact is None:
            contact = Contact(
                email=row.email,
                user_id=row.user_id,
                phone=row.phone,
                attributes=dict(row.attributes),
                created_at=now,
                updated_at=now,
            )
            new.append(contact)
        else:
            contact.email = contact.email or row.email
            contact.user_id = contact.user_id or row.user_id
            if row.phone:
                contact.phone = row.phone
            contact.attributes = {**(contact.attributes or {}), **row.attributes}
            contact.updated_at = now
            changed[contact.pk] = contact
        contact_of.append((row, contact))
    if new:
        Contact.objects.bulk_create(new)
    if changed:
        update_from_values(Contact, list(changed.values()), _WRITTEN_FIELDS)
    joined = memberships_add(
        pairs={(contact.pk, contact_list_id) for _, contact in contact_of},
        source=ListMembership.Source.IMPORT,
    )
    consent_changes = 0
    with_consent = [(row, contact) for row, contact in contact_of if row.consent]
    if with_consent:
        batch = ConsentBatch(
            contact_ids=sorted({contact.pk for _, contact in with_consent}),
            catalogue=catalogue or Catalogue(),
            source=ConsentSource.IMPORT,
            note=f"CSV import #{import_id}",
        )
        batch.load()
        for row, contact in with_consent:
            for (scope, scope_id), receive in row.consent:
                try:
                    if scope == "channel":
                        batch.set_channel(
                            contact.pk, batch.catalogue.channels[scope_id], receive=receive
                        )
                    else:
                        batch.set_message_type(
                            contact.pk, batch.catalogue.message_types[scope_id], receive=receive
                        )
                except ConsentError as exc:
                    bad.append(BadRow(row.line, "bad_value", str(exc)))
        consent_changes, _ = batch.save()
    return ChunkWritten(
        created=len(new),
        updated=len(changed),
        joined=joined,
        consent_changes=consent_changes,
        bad=bad,
    )
