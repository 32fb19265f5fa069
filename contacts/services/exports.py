"""Contacts as CSV rows, streamed: a list's members or a segment's matches,
read in keyset chunks over the contact's primary key, each attribute a column."""

import json
import re
from collections.abc import Iterator

from django.db import connections
from django.db.models import QuerySet

from contacts.conditions import compile_conditions
from contacts.models import Contact, ContactList, Segment

COLUMNS = ["email", "userId", "phone", "timezone", "locale", "blocklisted", "createdAt"]
# More attribute columns than this are left out (a spreadsheet would not cope either).
MAX_ATTRIBUTE_COLUMNS = 500
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def list_audience(*, contact_list: ContactList) -> QuerySet:
    return Contact.objects.filter(listmembership__contact_list=contact_list)


def segment_audience(*, segment: Segment) -> QuerySet:
    return Contact.objects.filter(compile_conditions(segment.conditions))


def attribute_keys(*, contacts: QuerySet) -> list[str]:
    """Every attribute key the contacts carry, sorted: one pass over them."""
    connection = connections[contacts.db]
    if connection.vendor == "postgresql":
        sql, params = contacts.order_by().values("attributes").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT DISTINCT k FROM ({sql}) AS c(attributes), "
                "jsonb_object_keys(CASE WHEN jsonb_typeof(c.attributes) = 'object' "
                "THEN c.attributes ELSE '{}'::jsonb END) AS k ORDER BY k LIMIT %s",
                [*params, MAX_ATTRIBUTE_COLUMNS],
            )
            return [row[0] for row in cursor.fetchall()]
    keys = set()
    for attributes in _keyset(contacts.values_list("pk", "attributes"), 5000):
        if isinstance(attributes[1], dict):
            keys.update(attributes[1])
    return sorted(keys)[:MAX_ATTRIBUTE_COLUMNS]


def _keyset(values, chunk):
    last = 0
    while True:
        rows = list(values.filter(pk__gt=last).order_by("pk")[:chunk])
        yield from rows
        if len(rows) < chunk:
            return
        last = rows[-1][0]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    text = str(value)
    # A spreadsheet runs a cell starting with = + - @ as a formula: such text
    # is written with a leading apostrophe. Numbers (and phone numbers) are not.
    first = text[:1]
    if first in ("=", "@", "\t", "\r") or (first in ("+", "-") and not _NUMBER.match(text)):
        return "'" + text
    return text


def contacts_export_rows(*, contacts: QuerySet, chunk: int = 5000) -> Iterator[list[str]]:
    """The header, then one row per contact in id order. One query for the
    attribute keys, then one per `chunk` contacts, however many there are."""
    keys = attribute_keys(contacts=contacts)
    yield COLUMNS + keys
    values = contacts.values_list(
        "pk", "email", "user_id", "phone", "timezone", "locale", "blocklisted", "created_at",
        "attributes",
    )  # fmt: skip
    for _pk, email, user_id, phone, zone, locale, blocklisted, created_at, attributes in _keyset(
        values, chunk
    ):
        attributes = attributes if isinstance(attributes, dict) else {}
        yield [
            _cell(email),
            _cell(user_id),
            _cell(phone),
            _cell(zone),
            _cell(locale),
            _cell(blocklisted),
            created_at.isoformat(),
        ] + [_cell(attributes.get(key)) for key in keys]
