"""The condition grammar shared by segments and journey conditions.

A condition tree is JSON:

    {"all": [<cond>, ...]}          every child matches
    {"any": [<cond>, ...]}          at least one child matches
    {"not": <cond>}                 the child does not match
    {"attribute": "plan", "op": "eq", "value": "pro"}
    {"list": 12, "op": "member"}    or "not_member"
    {"event": "purchase", "op": "done", "within_days": 30}   or "not_done"

Attribute paths are dotted ("address.city"). Attribute operators: eq, ne,
gt, gte, lt, lte, contains, exists, not_exists.

`compile_conditions` turns a tree into a Q over Contact so a segment is one
SQL query whatever its size; `attribute_matches` answers the same question
for one contact already in memory.
"""

import json
import re
from datetime import timedelta

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

ATTRIBUTE_OPERATORS = {
    "eq": "equals",
    "ne": "does not equal",
    "gt": "is greater than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "contains": "contains",
    "exists": "is set",
    "not_exists": "is not set",
}
VALUELESS_OPERATORS = {"exists", "not_exists"}
_PATH_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


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


def _lookup(path):
    return "attributes__" + "__".join(path.split("."))


def _attribute_q(path, op, value):
    validate_attribute_path(path)
    key = _lookup(path)
    if op == "exists":
        # A key that holds JSON null does not exist, as for attribute_matches.
        parent, _, leaf = key.rpartition("__")
        return Q(**{f"{parent}__has_key": leaf}) & ~Q(**{key: None})
    if op == "not_exists":
        return ~_attribute_q(path, "exists", None)
    if op == "eq":
        return Q(**{key: value})
    if op == "ne":
        return ~Q(**{key: value}) | ~_attribute_q(path, "exists", None)
    if op in {"gt", "gte", "lt", "lte"}:
        return Q(**{f"{key}__{op}": value})
    if op == "contains":
        return Q(**{f"{key}__icontains": str(value)})
    raise ConditionError(f"unknown attribute operator {op!r}")


def compile_conditions(tree, *, now=None):
    """Compile a condition tree into a Q over Contact. An empty tree matches everyone."""
    from contacts.models import Event, ListMembership

    if not tree:
        return Q()
    if not isinstance(tree, dict):
        raise ConditionError("a condition must be a JSON object")
    if "all" in tree or "any" in tree:
        children = tree.get("all", tree.get("any"))
        if not isinstance(children, list) or not children:
            raise ConditionError("'all' and 'any' take a non-empty list")
        q = Q() if "all" in tree else Q(pk__in=[])
        for child in children:
            cq = compile_conditions(child, now=now)
            q = (q & cq) if "all" in tree else (q | cq)
        return q
    if "not" in tree:
        return ~compile_conditions(tree["not"], now=now)
    op = tree.get("op")
    if "attribute" in tree:
        if op not in ATTRIBUTE_OPERATORS:
            raise ConditionError(f"unknown attribute operator {op!r}")
        return _attribute_q(tree["attribute"], op, tree.get("value"))
    if "list" in tree:
        if op not in {"member", "not_member"}:
            raise ConditionError("list conditions take op 'member' or 'not_member'")
        member = Exists(
            ListMembership.objects.filter(contact=OuterRef("pk"), contact_list_id=tree["list"])
        )
        return Q(member) if op == "member" else ~Q(member)
    if "event" in tree:
        if op not in {"done", "not_done"}:
            raise ConditionError("event conditions take op 'done' or 'not_done'")
        events = Event.objects.filter(contact=OuterRef("pk"), name=tree["event"])
        if tree.get("within_days"):
            since = (now or timezone.now()) - timedelta(days=int(tree["within_days"]))
            events = events.filter(occurred_at__gte=since)
        return Q(Exists(events)) if op == "done" else ~Q(Exists(events))
    raise ConditionError(f"unrecognised condition {json.dumps(tree)[:80]}")


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


def attribute_matches(attributes, path, op, value):
    """Whether one contact's attributes satisfy `path op value`."""
    validate_attribute_path(path)
    actual = _dig(attributes or {}, path)
    if op == "exists":
        return actual is not _MISSING and actual is not None
    if op == "not_exists":
        return actual is _MISSING or actual is None
    if actual is _MISSING:
        return op == "ne"
    if op == "eq":
        return actual == value
    if op == "ne":
        return actual != value
    if op == "contains":
        if isinstance(actual, list):
            return value in actual
        return str(value).lower() in str(actual).lower()
    if op in {"gt", "gte", "lt", "lte"}:
        try:
            if op == "gt":
                return actual > value
            if op == "gte":
                return actual >= value
            if op == "lt":
                return actual < value
            return actual <= value
        except TypeError:
            return False
    raise ConditionError(f"unknown attribute operator {op!r}")
