"""Writing one chunk of good rows: contacts upserted, members added to the
list, consent changed with a ledger entry each, all set-based and in one
transaction, whatever the chunk's size.

On PostgreSQL the chunk's rows are COPYed into a temporary table as the dry
run wrote them (imports.staging), and contacts are inserted and changed by
INSERT … SELECT and UPDATE … FROM that table; only which stored contact each
row names is decided in Python (Known.resolve, the dry run's rule). SQLite,
the embedded default, writes through the ORM.
"""

import json
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from contacts.models import Contact, ListMembership
from contacts.services.lists import members_add, memberships_add
from contacts.sql import array_literal, update_from_values
from imports.parsing import BadRow
from imports.staging import COLUMNS, row_from_line, row_line
from subscriptions.models import ConsentSource
from subscriptions.services.batch import Catalogue, ConsentBatch
from subscriptions.services.bulk import ConsentAsk, consents_apply
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

    A constant number of queries per chunk, whatever its size. Attributes are
    merged into what is stored; an empty cell never clears anything.
    """
    if connection.vendor == "postgresql":
        return lines_write(
            lines=[row_line(row) for row in rows],
            contact_list_id=contact_list_id,
            import_id=import_id,
            catalogue=catalogue,
        )
    return _retrying(lambda: _write_once(rows, contact_list_id, import_id, catalogue))


def lines_write(*, lines, contact_list_id: int, import_id: int, catalogue=None) -> ChunkWritten:
    """chunk_write for rows as the dry run wrote them (imports.staging lines),
    COPYed to the database as they are."""
    if connection.vendor != "postgresql":
        rows = [row_from_line(line) for line in lines]
        return chunk_write(
            rows=rows, contact_list_id=contact_list_id, import_id=import_id, catalogue=catalogue
        )
    return _retrying(lambda: _write_lines(lines, contact_list_id, import_id, catalogue))


def _retrying(write):
    for attempt in range(_ATTEMPTS):
        try:
            with transaction.atomic():
                return write()
        except (IntegrityError, _Raced):
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


class _Raced(Exception):
    """Another writer created one of the chunk's new contacts meanwhile."""


_STAGE = "waymark_import_rows"


@dataclass(frozen=True)
class _Stored:
    pk: int
    email: str | None
    user_id: str | None


@dataclass(frozen=True)
class _Named:
    line: int
    email: str | None
    user_id: str | None


def _write_lines(lines, contact_list_id, import_id, catalogue):
    now = timezone.now()
    contacts = Contact._meta.db_table
    with connection.cursor() as cursor:
        _stage(cursor, lines)
        # Which stored contact each row names: the dry run's rule, on what is stored now.
        cursor.execute(
            "SELECT r.line, r.email, r.user_id, e.id, e.email, e.user_id, u.id, u.email, u.user_id "
            f"FROM {_STAGE} r LEFT JOIN {contacts} e ON e.email = r.email "
            f"LEFT JOIN {contacts} u ON u.user_id = r.user_id"
        )
        bad, new_lines, old_lines, targets = [], [], [], {}
        for line, email, user_id, *stored in cursor.fetchall():
            by_email = _Stored(*stored[:3]) if stored[0] is not None else None
            by_user_id = _Stored(*stored[3:]) if stored[3] is not None else None
            known = Known(
                {email: by_email} if by_email else {}, {user_id: by_user_id} if by_user_id else {}
            )
            contact = known.resolve(_Named(line, email, user_id))
            if isinstance(contact, BadRow):
                bad.append(contact)
            elif contact is None:
                new_lines.append(line)
            else:
                old_lines.append(line)
                targets[line] = contact.pk
        new_ids = _new_contact_ids(cursor, len(new_lines))
        targets.update(zip(new_lines, new_ids, strict=True))
        # A stored contact named by two rows (one by email, one by userId) takes
        # them in turn, in line order, as the rows would be applied one by one.
        rounds, seen = {}, {}
        for line in sorted(old_lines):
            seen[targets[line]] = seen.get(targets[line], 0) + 1
            rounds[line] = seen[targets[line]]
        lines_kept = sorted(targets)
        cursor.execute(
            f"UPDATE {_STAGE} AS r SET target = v.target, created = v.created, round = v.round "
            "FROM unnest(%s::integer[], %s::bigint[], %s::boolean[], %s::integer[]) "
            "AS v(line, target, created, round) WHERE r.line = v.line",
            [
                array_literal(lines_kept),
                array_literal(targets[line] for line in lines_kept),
                array_literal(line not in rounds for line in lines_kept),
                array_literal(rounds.get(line, 0) for line in lines_kept),
            ],
        )
        if new_lines:
            _insert_contacts(cursor, now, len(new_lines))
        for turn in range(1, max(rounds.values(), default=0) + 1):
            cursor.execute(
                f"UPDATE {contacts} AS t SET "
                "email = coalesce(nullif(t.email, ''), r.email), "
                "user_id = coalesce(nullif(t.user_id, ''), r.user_id), "
                "phone = CASE WHEN r.phone <> '' THEN r.phone ELSE t.phone END, "
                "attributes = coalesce(t.attributes, '{}'::jsonb) || r.attributes, "
                f"updated_at = %s FROM {_STAGE} AS r WHERE t.id = r.target AND r.round = %s",
                [now, turn],
            )
        joined = members_add(
            contact_list_id=contact_list_id,
            contact_ids=set(targets.values()),
            source=ListMembership.Source.IMPORT,
        )
        cursor.execute(
            f"SELECT line, target, consent FROM {_STAGE} "
            "WHERE consent IS NOT NULL AND target IS NOT NULL ORDER BY line"
        )
        asks, ask_lines = [], []
        for line, target, consent in cursor.fetchall():
            for scope, scope_id, receive in _json(consent):
                asks.append(ConsentAsk(target, scope, scope_id, receive))
                ask_lines.append(line)
    consent_changes = 0
    if asks:
        applied = consents_apply(
            asks=asks,
            source=ConsentSource.IMPORT,
            note=f"CSV import #{import_id}",
            catalogue=catalogue or Catalogue(),
        )
        consent_changes = applied.changes
        bad.extend(
            BadRow(ask_lines[position], "bad_value", reason)
            for position, reason in applied.refused.items()
        )
    return ChunkWritten(
        created=len(new_lines),
        updated=len({targets[line] for line in old_lines}),
        joined=joined,
        consent_changes=consent_changes,
        bad=bad,
    )


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _stage(cursor, lines):
    """The chunk's rows in a temporary table of this connection, emptied first."""
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (line integer PRIMARY KEY, "
        "email text, user_id text, phone text, attributes jsonb, consent jsonb, "
        "target bigint, created boolean NOT NULL DEFAULT false, round integer NOT NULL DEFAULT 0)"
    )
    cursor.execute(f"TRUNCATE {_STAGE}")
    columns = ", ".join(COLUMNS)
    with cursor.copy(f"COPY {_STAGE} ({columns}) FROM STDIN") as copy:
        copy.write(b"".join(lines))


def _new_contact_ids(cursor, count) -> list:
    """`count` ids for new contacts, from the contacts' own sequence."""
    if not count:
        return []
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s) ORDER BY 1",
        [Contact._meta.db_table, count],
    )
    return [row[0] for row in cursor.fetchall()]


def _insert_contacts(cursor, now, expected):
    """INSERT … SELECT the new contacts; _Raced when another writer created
    one of them meanwhile (the chunk is then written again)."""
    named = {"id": "target", "email": "email", "user_id": "user_id", "phone": "phone"}
    named |= {"attributes": "attributes", "created_at": "%s", "updated_at": "%s"}
    columns, values, params = [], [], []
    for field in Contact._meta.concrete_fields:
        columns.append(connection.ops.quote_name(field.column))
        if field.name in named:
            values.append(named[field.name])
            if named[field.name] == "%s":
                params.append(now)
        else:
            # Every other column takes the field's default (blank text, false, …).
            values.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    cursor.execute(
        f"INSERT INTO {Contact._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM {_STAGE} WHERE created ORDER BY line "
        "ON CONFLICT DO NOTHING",
        params,
    )
    if cursor.rowcount != expected:
        raise _Raced()


def _write_once(rows, contact_list_id, import_id, catalogue):
    """The ORM's way, for SQLite."""
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
