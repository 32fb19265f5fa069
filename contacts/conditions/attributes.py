"""Attribute comparisons: one operator table, read by both evaluators.

Every operator has its SQL (for PostgreSQL, over a JSON column: a contact's
attributes, or an event's data) and its Python twin, side by side, so that a
change to one is made to the other. The rules both follow:

- A value is typed by its JSON type. A number compares only with numbers, a
  string only with strings, a boolean only with booleans: "30" is not 30, and
  true is not 1.
- A key holding JSON null does not exist.
- Paths go through objects only ("address.city"); a list is never indexed.
- Every not_ operator is the exact opposite of its positive: `ne` and
  `not_in` also match a contact without the attribute.
- `contains` is a case-insensitive substring for a string and membership
  (exact, typed) for a list. `starts_with` is case-insensitive.
- Strings order by code point (SQL: COLLATE "C").
- Date operators read a string beginning with an ISO date (2026-03-01, or
  2026-03-01T10:00:00Z, whose date is 2026-03-01) and compare calendar days;
  "today" is the day of `now` in the site's time zone (TIME_ZONE).
"""

import json
import math
import re
from datetime import date, datetime, timedelta

from django.db.models import BooleanField, Expression, F
from django.utils import timezone

ATTRIBUTE_OPERATORS = {
    "eq": "equals",
    "ne": "does not equal",
    "gt": "is greater than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "exists": "is set",
    "not_exists": "is not set",
    "before": "is a date before",
    "after": "is a date after",
    "within_last_days": "is a date within the last N days",
    "more_than_days_ago": "is a date more than N days ago",
    "within_next_days": "is a date within the next N days",
}
VALUELESS_OPERATORS = {"exists", "not_exists"}
DATE_OPERATORS = {"before", "after"}
DAYS_OPERATORS = {"within_last_days", "more_than_days_ago", "within_next_days"}
# The negative operators and the positive each one is the opposite of.
# A hundred years: enough for any date a marketer means, and far from the calendar's end.
MAX_DAYS = 36500
NEGATIONS = {"ne": "eq", "not_in": "in", "not_contains": "contains", "not_exists": "exists"}

_PATH_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
# What a date operator reads: a string that begins with YYYY-MM-DD.
_DATE_PREFIX_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_PREFIX_SQL = "^[0-9]{4}-[0-9]{2}-[0-9]{2}"


class ConditionError(ValueError):
    pass


def parse_value(raw):
    """Read a value typed in the admin: JSON when it parses ("30", "true"),
    the text itself otherwise ("pro")."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def validate_attribute_path(path):
    if not isinstance(path, str) or not _PATH_RE.match(path) or "__" in path:
        raise ConditionError(f"{path!r} is not an attribute path (use letters, digits, _ - and .)")


def json_type(value):
    """The JSON type of a Python value read from JSON ("missing" for no value)."""
    if value is _MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_scalar(value):
    return json_type(value) in {"boolean", "number", "string"} and not (
        isinstance(value, float) and not math.isfinite(value)
    )


def validate_attribute_condition(path, op, value):
    """Refuse, with the reason, an attribute comparison the evaluators cannot read."""
    validate_attribute_path(path)
    if op not in ATTRIBUTE_OPERATORS:
        known = ", ".join(ATTRIBUTE_OPERATORS)
        raise ConditionError(f"unknown attribute operator {op!r} (known: {known})")
    if op in VALUELESS_OPERATORS:
        if value is not None:
            raise ConditionError(f"{op!r} takes no value")
    elif op in {"eq", "ne"}:
        if not _is_scalar(value):
            raise ConditionError(
                f"{op!r} compares with a text, a number or true/false, not {value!r}"
                + (" (use 'exists' / 'not_exists' for a missing value)" if value is None else "")
            )
    elif op in {"gt", "gte", "lt", "lte"}:
        if json_type(value) not in {"number", "string"} or not _is_scalar(value):
            raise ConditionError(f"{op!r} compares with a number or a text, not {value!r}")
    elif op in {"in", "not_in"}:
        if not isinstance(value, list) or not value or not all(map(_is_scalar, value)):
            raise ConditionError(f"{op!r} takes a non-empty list of texts, numbers or true/false")
    elif op in {"contains", "not_contains"}:
        if not _is_scalar(value) or value == "":
            raise ConditionError(f"{op!r} looks for a text, a number or true/false, not {value!r}")
    elif op == "starts_with":
        if not isinstance(value, str) or not value:
            raise ConditionError(f"'starts_with' takes a non-empty text, not {value!r}")
    elif op in DATE_OPERATORS:
        if not isinstance(value, str) or not _is_iso_date(value):
            raise ConditionError(f"{op!r} takes a date written YYYY-MM-DD, not {value!r}")
    elif op in DAYS_OPERATORS and (
        json_type(value) != "number" or not isinstance(value, int) or not 0 <= value <= MAX_DAYS
    ):
        raise ConditionError(
            f"{op!r} takes a whole number of days from 0 to {MAX_DAYS}, not {value!r}"
        )


def _is_iso_date(text):
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _date_tests(op, value, now):
    """[(sign, ISO date)] a day must pass for a date operator. Dates are
    compared as text: YYYY-MM-DD orders as the days do."""
    if op == "before":
        return [("<", value)]
    if op == "after":
        return [(">", value)]
    today = timezone.localdate(now or timezone.now())
    days = timedelta(days=value)
    if op == "within_last_days":
        return [(">=", (today - days).isoformat()), ("<=", today.isoformat())]
    if op == "more_than_days_ago":
        return [("<", (today - days).isoformat())]
    return [(">=", today.isoformat()), ("<=", (today + days).isoformat())]


_COMPARE = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


# --- Python -----------------------------------------------------------------

_MISSING = object()


def _dig(attributes, path):
    value = attributes
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def attribute_value(attributes, path, default=None):
    """The value at `path` ("address.city") in a contact's attributes, or `default`."""
    value = _dig(attributes or {}, path)
    return default if value is _MISSING else value


def _same(a, b):
    kind = json_type(a)
    return kind == json_type(b) and kind in {"boolean", "number", "string"} and a == b


def attribute_matches(attributes, path, op, value, *, now=None):
    """Whether one contact's attributes satisfy `path op value` (as the SQL would say)."""
    validate_attribute_condition(path, op, value)
    if op in NEGATIONS:
        return not attribute_matches(attributes, path, NEGATIONS[op], value, now=now)
    actual = _dig(attributes or {}, path)
    kind = json_type(actual)
    if op == "exists":
        return kind not in {"missing", "null"}
    if op == "eq":
        return _same(actual, value)
    if op == "in":
        return any(_same(actual, v) for v in value)
    if op in {"gt", "gte", "lt", "lte"}:
        if kind != json_type(value):
            return False
        return {
            "gt": actual > value,
            "gte": actual >= value,
            "lt": actual < value,
            "lte": actual <= value,
        }[op]
    if op == "contains":
        if kind == "array":
            return any(_same(item, value) for item in actual)
        return kind == "string" and isinstance(value, str) and value.lower() in actual.lower()
    if op == "starts_with":
        return kind == "string" and actual.lower().startswith(value.lower())
    # A date operator.
    if kind != "string" or not _DATE_PREFIX_RE.match(actual):
        return False
    return all(_COMPARE[sign](actual[:10], bound) for sign, bound in _date_tests(op, value, now))


# --- SQL --------------------------------------------------------------------


class AttributeTest(Expression):
    """`path op value` over a JSON column, as a boolean that is never NULL
    (so NOT and OR around it behave as in Python).

    On PostgreSQL it is plain SQL. On SQLite (`make run`) it calls the Python
    evaluator itself, registered as a function on each connection: slower,
    and the same answers by construction."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, path, op, value, *, column="attributes", now=None):
        validate_attribute_condition(path, op, value)
        super().__init__(output_field=BooleanField())
        self.path, self.op, self.value, self.now = path, op, value, now
        self.column = F(column)

    def get_source_expressions(self):
        return [self.column]

    def set_source_expressions(self, exprs):
        (self.column,) = exprs

    def as_sqlite(self, compiler, connection):
        column_sql, column_params = compiler.compile(self.column)
        now = (self.now or timezone.now()).isoformat()
        params = [*column_params, self.path, self.op, json.dumps(self.value), now]
        return f"{SQLITE_FUNCTION}({column_sql}, %s, %s, %s, %s)", params

    def as_sql(self, compiler, connection):
        if connection.vendor != "postgresql":
            raise ConditionError("conditions are evaluated in SQL on PostgreSQL and SQLite only")
        column_sql, column_params = compiler.compile(self.column)
        parts = self.path.split(".")
        # `->` with a text key reads objects only, never a list's elements.
        found = ("(" + column_sql + " -> %s::text" * len(parts) + ")", [*column_params, *parts])
        sql, params = _sql(self._test(NEGATIONS.get(self.op, self.op), found))
        sql = f"COALESCE(({sql}), false)"
        return (f"NOT {sql}" if self.op in NEGATIONS else sql), params

    def _test(self, op, v):
        """The test as pieces: SQL text, (sql, params) pairs, and Param(value)."""
        value = self.value
        typeof = ("jsonb_typeof(", v, ")")
        text = (v, " #>> '{}'")
        if op == "exists":
            return (*typeof, " <> 'null'")
        if op == "eq":
            return (v, " = ", Param(json.dumps(value)), "::jsonb")
        if op == "in":
            return (v, " = ANY(", Param([json.dumps(item) for item in value]), "::jsonb[])")
        if op in {"gt", "gte", "lt", "lte"}:
            sign = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
            if json_type(value) == "number":
                compared = ("(", v, ")::numeric ", sign, " ", Param(json.dumps(value)), "::numeric")
                kind = "number"
            else:
                compared = ("(", *text, ') COLLATE "C" ', sign, " ", Param(value), "::text")
                compared += (' COLLATE "C"',)
                kind = "string"
            return ("CASE WHEN ", *typeof, f" = '{kind}' THEN ", *compared, " ELSE false END")
        if op == "contains":
            member = (v, " @> ", Param(json.dumps([value])), "::jsonb")
            if not isinstance(value, str):
                return ("CASE WHEN ", *typeof, " = 'array' THEN ", *member, " ELSE false END")
            return (
                "CASE ", *typeof,
                " WHEN 'array' THEN ", *member,
                " WHEN 'string' THEN strpos(lower(", *text, "), lower(", Param(value), "::text))",
                " > 0",
                " ELSE false END",
            )  # fmt: skip
        if op == "starts_with":
            return (
                "CASE WHEN ", *typeof, " = 'string' THEN starts_with(lower(", *text, "), lower(",
                Param(value), "::text)) ELSE false END",
            )  # fmt: skip
        day = ("left(", *text, ', 10) COLLATE "C"')
        bounds = []
        for sign, bound in _date_tests(op, value, self.now):
            bounds += [" AND ", *day, f" {sign} ", Param(bound), '::text COLLATE "C"']
        return (
            "CASE WHEN ", *typeof, " = 'string' AND (", *text, ") ~ ", Param(_DATE_PREFIX_SQL),
            "::text THEN true", *bounds, " ELSE false END",
        )  # fmt: skip


SQLITE_FUNCTION = "waymark_attribute_matches"


def _sqlite_attribute_matches(column, path, op, value, now):
    attributes = json.loads(column) if column else {}
    return attribute_matches(
        attributes, path, op, json.loads(value), now=datetime.fromisoformat(now)
    )


def sqlite_register(sender, connection, **kwargs):
    """Give a new SQLite connection the function AttributeTest calls there
    (a receiver of django.db.backends.signals.connection_created)."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            SQLITE_FUNCTION, 5, _sqlite_attribute_matches, deterministic=True
        )


class Param:
    """One query parameter among SQL pieces."""

    def __init__(self, value):
        self.value = value


def _sql(pieces):
    sql, params = [], []
    for piece in pieces:
        if isinstance(piece, str):
            sql.append(piece)
        elif isinstance(piece, Param):
            sql.append("%s")
            params.append(piece.value)
        else:
            sql.append(piece[0])
            params.extend(piece[1])
    return "".join(sql), params
