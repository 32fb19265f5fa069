"""Reading an import's CSV file as a stream, and turning each row into what
it says about one contact (or the reason it cannot be used).

Nothing here touches the database: the dry run and the import job share it,
so they judge every row the same way.
"""

import codecs
import csv
import datetime
import io
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from contacts.phones import InvalidPhoneNumber, normalise_phone

# How much of the file the upload reads to find its header, delimiter and
# whether it is UTF-8; the rest is read by the background jobs.
SNIFF_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
TARGETS = ("email", "user_id", "phone", "attribute", "message_type", "channel")
ATTRIBUTE_TYPES = ("text", "number", "boolean", "date")
YES = {"1", "true", "yes", "y", "subscribe", "subscribed", "on"}
NO = {"0", "false", "no", "n", "unsubscribe", "unsubscribed", "off"}


class FileProblem(ValueError):
    """The file as a whole cannot be read (encoding, header): nothing is imported."""


@dataclass(frozen=True)
class Sniffed:
    header: list
    delimiter: str
    looks_utf8: bool
    problem: str = ""  # why the header cannot be used; empty when it can


def _decodes_as_utf8(data: bytes) -> tuple[bool, str]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(data, final=False)  # a character cut at the end is not an error
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return False, f"byte 0x{data[exc.start]:02X} on line {line}"
    return True, ""


def sniff(fileobj) -> Sniffed:
    """The header, delimiter and likely encoding, from the start of the file only."""
    data = fileobj.read(SNIFF_BYTES)
    if not data.strip():
        return Sniffed([], ",", True, "The file is empty.")
    looks_utf8, _ = _decodes_as_utf8(data)
    text = data.decode("utf-8-sig" if looks_utf8 else "cp1252", errors="replace")
    first_line = text.splitlines()[0] if text.splitlines() else ""
    delimiter = max(DELIMITERS, key=first_line.count) if first_line else ","
    if first_line.count(delimiter) == 0:
        delimiter = ","
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=delimiter))
    except (csv.Error, StopIteration):
        return Sniffed([], delimiter, looks_utf8, "The first line is not a CSV header.")
    return Sniffed(header, delimiter, looks_utf8, header_problem(header))


def header_problem(header: list) -> str:
    """Why `header` cannot name the file's columns, or ""."""
    names = [name.strip() for name in header]
    if not any(names):
        return "The first line is empty: the file needs a header row naming each column."
    looks_like_data = [name for name in names if "@" in name or name.replace(".", "").isdigit()]
    if looks_like_data:
        return (
            f"The first line looks like data (“{looks_like_data[0]}”), not a header. "
            "Add a first line naming each column, e.g. email,firstName,phone."
        )
    for position, name in enumerate(names, start=1):
        if not name:
            return f"Column {position} has no name in the header row."
    seen = set()
    for name in names:
        if name.lower() in seen:
            return f"Two columns are named “{name}”: give each column its own name."
        seen.add(name.lower())
    return ""


def mapping_problem(mapping: dict, header: list) -> str:
    """Why `mapping` cannot be applied to a file with `header`, or ""."""
    names = {name.strip() for name in header}
    for column in mapping:
        if column not in names:
            return f"The column “{column}” is mapped, but the file's header has no such column."
    targets = [spec["to"] for spec in mapping.values()]
    if "email" not in targets and "user_id" not in targets:
        return "Map a column to email or to userId: each row must name its contact."
    for unique in ("email", "user_id", "phone"):
        if targets.count(unique) > 1:
            return f"Only one column can be mapped to {unique.replace('_id', 'Id')}."
    attribute_names = [spec["name"] for spec in mapping.values() if spec["to"] == "attribute"]
    for name in attribute_names:
        if not name:
            return "Each attribute column needs an attribute name."
        if attribute_names.count(name) > 1:
            return f"Two columns are mapped to the attribute “{name}”."
    return ""


@dataclass
class Row:
    """One good row: the contact it names and what to write."""

    line: int
    email: str | None
    user_id: str | None
    phone: str = ""
    attributes: dict = field(default_factory=dict)
    # (("message_type" | "channel", id), receive: bool)
    consent: list = field(default_factory=list)


@dataclass(frozen=True)
class BadRow:
    line: int
    kind: str  # bad_email, bad_phone, bad_value, duplicate, conflict, bad_shape
    reason: str


def _typed(value: str, kind: str, column: str):
    if kind == "text":
        return value
    if kind == "number":
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value.replace(",", "."))
        except ValueError:
            raise ValueError(f"“{value}” in column {column} is not a number.") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"“{value}” in column {column} is not a number.")
        return number
    if kind == "boolean":
        if value.lower() in YES:
            return True
        if value.lower() in NO:
            return False
        raise ValueError(f"“{value}” in column {column} is not yes or no (true/false, 1/0).")
    if kind == "date":
        try:
            return datetime.date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError(
                f"“{value}” in column {column} is not a date written as YYYY-MM-DD."
            ) from None
    raise AssertionError(kind)


class RowReader:
    """Reads the import's file as a stream and judges each row: yields Row
    or BadRow, one per data line. Duplicates (an email or userId an earlier
    row named) are bad rows. `bytes_read` says how far the file is read.

    Raises FileProblem when the file stops decoding in its encoding.
    """

    def __init__(self, binary, *, encoding: str, delimiter: str, mapping: dict):
        self.binary = binary
        self.encoding = encoding or "utf-8-sig"
        self.delimiter = delimiter
        self.mapping = mapping
        self.seen = {}  # hash of an email or userId -> first line

    @property
    def bytes_read(self) -> int:
        return self.binary.tell()

    def _lines(self):
        """The file's lines decoded one by one, so a line that does not
        decode is named by its number."""
        encoding = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        for number, raw in enumerate(self.binary, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield raw.decode(encoding)
            except UnicodeDecodeError:
                name = dict(_ENCODING_NAMES).get(self.encoding, self.encoding)
                raise FileProblem(
                    f"The file is not {name}: line {number} cannot be read as {name}. "
                    "Choose the file's encoding (Windows-1252 for files saved by Excel on "
                    "Windows, Latin-1 for older ones) and check it again."
                ) from None

    def __iter__(self) -> Iterator[Row | BadRow]:
        reader = csv.reader(self._lines(), delimiter=self.delimiter)
        try:
            try:
                header = [name.strip() for name in next(reader)]
            except StopIteration:
                return
            positions = {name: index for index, name in enumerate(header)}
            columns = [(positions[name], name, spec) for name, spec in self.mapping.items()]
            width = len(header)
            for cells in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in cells):
                    continue  # blank lines are not rows
                if len(cells) != width:
                    yield BadRow(
                        line, "bad_shape", f"has {len(cells)} fields; the header has {width}."
                    )
                    continue
                yield self._judge(line, cells, columns)
        except csv.Error as exc:
            raise FileProblem(f"Line {reader.line_num} is not valid CSV: {exc}.") from None

    def _judge(self, line, cells, columns) -> Row | BadRow:
        row = Row(line=line, email=None, user_id=None)
        for position, column, spec in columns:
            value = cells[position].strip()
            target = spec["to"]
            if target == "email":
                if value:
                    try:
                        validate_email(value)
                    except ValidationError:
                        return BadRow(line, "bad_email", f"“{value}” is not an email address.")
                    row.email = value.lower()
            elif target == "user_id":
                row.user_id = value or None
            elif not value:
                continue  # an empty cell changes nothing
            elif target == "phone":
                try:
                    row.phone = normalise_phone(value)
                except InvalidPhoneNumber as exc:
                    return BadRow(line, "bad_phone", str(exc))
            elif target == "attribute":
                try:
                    row.attributes[spec["name"]] = _typed(value, spec.get("type", "text"), column)
                except ValueError as exc:
                    return BadRow(line, "bad_value", str(exc))
            else:
                if value.lower() in YES:
                    receive = True
                elif value.lower() in NO:
                    receive = False
                else:
                    return BadRow(
                        line,
                        "bad_value",
                        f"“{value}” in column {column} is neither subscribe nor unsubscribe "
                        "(yes/no, true/false, 1/0).",
                    )
                row.consent.append(((target, int(spec["id"])), receive))
        if not row.email and not row.user_id:
            return BadRow(line, "bad_email", "has neither an email address nor a userId.")
        for key in (f"e:{row.email}" if row.email else None, f"u:{row.user_id}"):
            if key is None or key == "u:None":
                continue
            first = self.seen.get(hash(key))
            if first is not None:
                what = "email address" if key.startswith("e:") else "userId"
                return BadRow(line, "duplicate", f"has the same {what} as line {first}.")
        for key in (f"e:{row.email}", f"u:{row.user_id}"):
            if not key.endswith(":None"):
                self.seen[hash(key)] = line
        return row


_ENCODING_NAMES = [
    ("utf-8-sig", "UTF-8"),
    ("latin-1", "Latin-1"),
    ("cp1252", "Windows-1252"),
]
