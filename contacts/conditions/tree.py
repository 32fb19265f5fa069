"""Condition trees: their shape, their references, and the two evaluators.

docs/conditions.md describes the language for the people who write it.
"""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import BooleanField, Case, Exists, OuterRef, Q, Value, When
from django.utils import timezone

from contacts.conditions.attributes import (
    MAX_DAYS,
    AttributeTest,
    ConditionError,
    attribute_matches,
    validate_attribute_condition,
)

DONE_OPERATORS = ("done", "not_done")
MEMBER_OPERATORS = ("member", "not_member")


@dataclass(frozen=True)
class Leaf:
    """A kind of leaf another app adds (messaging adds "message"): `check`
    refuses a malformed leaf without touching the database, `references`
    refuses one naming what does not exist, `compile` gives its Q over
    Contact. The leaf's key is the key that marks it in a tree."""

    check: Callable[[dict], None]
    references: Callable[[list[dict]], None]
    compile: Callable[..., Q]


LEAVES: dict[str, Leaf] = {}


def register_leaf(key: str, leaf: Leaf) -> None:
    LEAVES[key] = leaf


def _where(at):
    return f"{at}: " if at else ""


def _only(tree, keys, what):
    """Refuse keys a leaf does not take: a misspelt one would change its meaning unseen."""
    unknown = sorted(set(tree) - set(keys))
    if unknown:
        raise ConditionError(
            f"{what} take {', '.join(map(repr, keys))}, not {', '.join(map(repr, unknown))}"
        )


def _check(tree, at=""):
    """Refuse a malformed tree (shape, operators, values); no queries.
    Returns the leaves that name other rows, by kind, to be looked up."""
    if not isinstance(tree, dict):
        raise ConditionError(f"{_where(at)}a condition must be a JSON object")
    if not tree:
        return
    groups = [key for key in ("all", "any", "not") if key in tree]
    if groups and len(tree) > 1:
        raise ConditionError(
            f"{_where(at)}{groups[0]!r} stands alone in its object; "
            f"put the rest inside it, not beside it ({', '.join(sorted(tree))})"
        )
    for group in ("all", "any"):
        if group in tree:
            children = tree[group]
            if not isinstance(children, list) or not children:
                raise ConditionError(f"{_where(at)}'all' and 'any' take a non-empty list")
            for i, child in enumerate(children):
                yield from _check(child, f"{at}{'.' if at else ''}{group}[{i}]")
            return
    if "not" in tree:
        if not tree["not"]:
            raise ConditionError(f"{_where(at)}'not' takes a condition")
        yield from _check(tree["not"], f"{at}{'.' if at else ''}not")
        return
    try:
        yield from _check_leaf(tree)
    except ConditionError as exc:
        raise ConditionError(f"{_where(at)}{exc}") from exc


def _check_leaf(tree):
    op = tree.get("op")
    if "attribute" in tree:
        _only(tree, ("attribute", "op", "value"), "attribute conditions")
        validate_attribute_condition(tree["attribute"], op, tree.get("value"))
        return
    if "list" in tree or "segment" in tree:
        kind = "list" if "list" in tree else "segment"
        _only(tree, (kind, "op"), f"{kind} conditions")
        if op not in MEMBER_OPERATORS:
            raise ConditionError(f"{kind} conditions take op 'member' or 'not_member'")
        if not isinstance(tree[kind], int) or isinstance(tree[kind], bool):
            raise ConditionError(f"a {kind} is named by its id (a number), not {tree[kind]!r}")
        yield kind, tree
        return
    if "event" in tree:
        _only(tree, ("event", "op", "within_days", "at_least", "where"), "event conditions")
        if op not in DONE_OPERATORS:
            raise ConditionError("event conditions take op 'done' or 'not_done'")
        if not isinstance(tree["event"], str) or not tree["event"]:
            raise ConditionError('name the event, e.g. {"event": "purchase", ...}')
        check_days(tree)
        at_least = tree.get("at_least", 1)
        if not isinstance(at_least, int) or isinstance(at_least, bool) or at_least < 1:
            raise ConditionError(f"'at_least' takes a whole number from 1, not {at_least!r}")
        where = tree.get("where", [])
        if not isinstance(where, list):
            raise ConditionError("'where' takes a list of conditions on the event's data")
        for i, test in enumerate(where):
            if not isinstance(test, dict) or "field" not in test:
                raise ConditionError(f'where[{i}]: give the data field, e.g. {{"field": ...}}')
            try:
                _only(test, ("field", "op", "value"), "tests on event data")
                validate_attribute_condition(test["field"], test.get("op"), test.get("value"))
            except ConditionError as exc:
                raise ConditionError(f"where[{i}]: {exc}") from exc
        return
    for key, leaf in LEAVES.items():
        if key in tree:
            leaf.check(tree)
            yield key, tree
            return
    raise ConditionError(f"unrecognised condition {json.dumps(tree)[:80]}")


def check_days(tree):
    """Refuse a `within_days` that is not a whole number of days from 1."""
    days = tree.get("within_days")
    if days is not None and (
        not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS
    ):
        raise ConditionError(
            f"'within_days' takes a whole number from 1 to {MAX_DAYS}, not {days!r}"
        )


def conditions_validate(tree, *, segment=None) -> None:
    """Refuse, with a clear reason, a tree Waymark cannot evaluate: bad shape,
    unknown operator, a value the operator cannot use, an unknown list,
    segment, template, message type or journey, a segment that (through
    others) contains itself. `segment` is the segment whose conditions
    `tree` is about to become (its stored ones are not read)."""
    from contacts.models import ContactList

    by_kind: dict[str, list[dict]] = {}
    for kind, leaf in _check(tree):
        by_kind.setdefault(kind, []).append(leaf)
    lists = {leaf["list"] for leaf in by_kind.pop("list", [])}
    missing = lists - set(ContactList.objects.filter(pk__in=lists).values_list("pk", flat=True))
    if missing:
        raise ConditionError(f"there is no list with id {', '.join(map(str, sorted(missing)))}")
    if by_kind.pop("segment", None) is not None:
        # Expanding reads every segment reached and refuses cycles.
        _expand(tree, stack=() if segment is None or segment.pk is None else (segment.pk,))
    for kind, leaves in by_kind.items():
        LEAVES[kind].references(leaves)


def _expand(tree, *, stack=()):
    """The tree with every segment leaf replaced by that segment's own tree
    (one query per segment), refusing a segment that contains itself."""
    from contacts.models import Segment

    if not tree:
        return tree
    for group in ("all", "any"):
        if group in tree:
            return {group: [_expand(child, stack=stack) for child in tree[group]]}
    if "not" in tree:
        return {"not": _expand(tree["not"], stack=stack)}
    if "segment" not in tree:
        return tree
    pk = tree["segment"]
    if pk in stack:
        names = dict(Segment.objects.filter(pk__in=stack).values_list("pk", "name"))
        path = " → ".join(names.get(p, f"#{p}") for p in (*stack, pk))
        raise ConditionError(f"a segment cannot contain itself: {path}")
    found = Segment.objects.filter(pk=pk).values_list("conditions", flat=True).first()
    if found is None:
        raise ConditionError(f"there is no segment with id {pk}")
    list(_check(found))
    inner = _expand(found, stack=(*stack, pk)) or {"everyone": True}
    return inner if tree["op"] == "member" else {"not": inner}


def compile_conditions(tree, *, now=None):
    """Compile a condition tree into a Q over Contact. An empty tree matches everyone.

    Segments named in the tree are read (one query each); everything else
    is a single WHERE clause, with EXISTS subqueries for lists, events and
    messages."""
    list(_check(tree))
    if not tree:
        return Q()
    return _compile(_expand(tree), now or timezone.now())


def _compile(tree, now):
    from contacts.models import Event, ListMembership

    if not tree or tree.get("everyone"):
        return Q(pk__isnull=False)
    if "all" in tree or "any" in tree:
        q = Q() if "all" in tree else Q(pk__in=[])
        for child in tree.get("all", tree.get("any")):
            cq = _compile(child, now)
            q = (q & cq) if "all" in tree else (q | cq)
        return q
    if "not" in tree:
        return ~_compile(tree["not"], now)
    op = tree.get("op")
    if "attribute" in tree:
        return Q(AttributeTest(tree["attribute"], op, tree.get("value"), now=now))
    if "list" in tree:
        member = Exists(
            ListMembership.objects.filter(contact=OuterRef("pk"), contact_list_id=tree["list"])
        )
        return Q(member) if op == "member" else ~Q(member)
    if "event" in tree:
        # Served by the (contact, name, occurred_at) index; at_least K reads K rows at most.
        events = Event.objects.filter(contact=OuterRef("pk"), name=tree["event"])
        if tree.get("within_days"):
            events = events.filter(occurred_at__gte=now - timedelta(days=tree["within_days"]))
        for test in tree.get("where", []):
            events = events.filter(
                AttributeTest(test["field"], test["op"], test.get("value"), column="data", now=now)
            )
        at_least = tree.get("at_least", 1)
        done = Exists(events.order_by()[at_least - 1 : at_least])
        return Q(done) if op == "done" else ~Q(done)
    for key, leaf in LEAVES.items():
        if key in tree:
            return leaf.compile(tree, now=now)
    raise ConditionError(f"unrecognised condition {json.dumps(tree)[:80]}")


def contacts_matching(tree, contact_ids: Iterable[int], *, now=None) -> set[int]:
    """The ids among `contact_ids` whose contacts match `tree`: one query
    whatever their number (plus one per segment the tree names)."""
    from contacts.models import Contact

    q = compile_conditions(tree, now=now)
    return set(Contact.objects.filter(q, pk__in=list(contact_ids)).values_list("pk", flat=True))


def contact_matches(tree, contact, *, now=None) -> bool:
    """Whether one contact (its attributes already loaded) matches `tree`.

    Attribute leaves are evaluated in Python, as the SQL would; the others
    (lists, events, messages) are answered by one query for all of them."""
    from contacts.models import Contact

    list(_check(tree))
    now = now or timezone.now()
    tree = _expand(tree)
    others = []
    _collect_others(tree, others)
    answers = {}
    if others:
        answers = Contact.objects.filter(pk=contact.pk).values(
            **{
                f"leaf_{i}": Case(
                    When(_compile(leaf, now), then=Value(True)),
                    default=Value(False),
                    output_field=BooleanField(),
                )
                for i, leaf in enumerate(others)
            }
        )
        answers = answers.first() or {}
    found = {id(leaf): answers.get(f"leaf_{i}", False) for i, leaf in enumerate(others)}
    return _evaluate(tree, contact.attributes, found, now)


def _collect_others(tree, into):
    if not tree:
        return
    if "all" in tree or "any" in tree:
        for child in tree.get("all", tree.get("any")):
            _collect_others(child, into)
    elif "not" in tree:
        _collect_others(tree["not"], into)
    elif "attribute" not in tree and not tree.get("everyone"):
        into.append(tree)


def _evaluate(tree, attributes, found, now):
    if not tree or tree.get("everyone"):
        return True
    if "all" in tree:
        return all(_evaluate(child, attributes, found, now) for child in tree["all"])
    if "any" in tree:
        return any(_evaluate(child, attributes, found, now) for child in tree["any"])
    if "not" in tree:
        return not _evaluate(tree["not"], attributes, found, now)
    if "attribute" in tree:
        return attribute_matches(
            attributes, tree["attribute"], tree["op"], tree.get("value"), now=now
        )
    return found[id(tree)]
