"""The rows file: the good rows the dry run judged, kept for the import job.

The dry run writes each good row, as parsing.RowReader judged it (email
checked and lower-cased, phone in E.164 form, typed attributes, consent
columns read), as one line of PostgreSQL's COPY text format:

    line <TAB> email <TAB> userId <TAB> phone <TAB> attributes (JSON) <TAB> consent (JSON)

so the import does not judge any row again: it hands the lines to COPY as
they are. Only the database's side (which contacts exist now) is looked at
again when the rows are written.
"""

import json
import re

from imports.parsing import Row

COLUMNS = ("line", "email", "user_id", "phone", "attributes", "consent")
NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_UNESCAPE = re.compile(r"\\(.)")
_UNESCAPED = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _text(value) -> str:
    return NULL if value is None else value.translate(_ESCAPES)


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_ESCAPES)


def row_line(row: Row) -> bytes:
    """`row` as one line of COPY text."""
    consent = [[scope, scope_id, receive] for (scope, scope_id), receive in row.consent]
    fields = (
        str(row.line),
        _text(row.email),
        _text(row.user_id),
        _text(row.phone or ""),
        _json(row.attributes),
        _json(consent) if consent else NULL,
    )
    return ("\t".join(fields) + "\n").encode()


def line_number(line: bytes) -> int:
    return int(line[: line.index(b"\t")])


def _field(value: str):
    if value == NULL:
        return None
    return _UNESCAPE.sub(lambda match: _UNESCAPED.get(match.group(1), match.group(1)), value)


def row_from_line(line: bytes) -> Row:
    """The Row a line of the rows file holds (row_line's inverse)."""
    number, email, user_id, phone, attributes, consent = (
        _field(value) for value in line.decode().rstrip("\n").split("\t")
    )
    return Row(
        line=int(number),
        email=email,
        user_id=user_id,
        phone=phone or "",
        attributes=json.loads(attributes),
        consent=[((scope, scope_id), receive) for scope, scope_id, receive in json.loads(consent)]
        if consent
        else [],
    )
