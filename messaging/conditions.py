"""The "message" leaf of the condition language: what a contact received,
opened or clicked (docs/conditions.md).

    {"message": "opened", "op": "done", "template": 7, "within_days": 30}

"received" is a message sent to the contact (status sent, at sent_at);
"opened" and "clicked" are engagement rows, at the time they happened, so a
message opened again last week counts for "opened in the last 7 days".
Test sends count for nothing. Messages may be narrowed by template, message
type and, through journeys (which registers it), the journey that sent them.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Exists, OuterRef, Q

from contacts.conditions import ConditionError, Leaf, check_days, register_leaf
from contacts.forms.conditions import MAX_CHOICES, register_condition_choices
from messaging.models import Engagement, Message, Template
from subscriptions.models import MessageType

ENGAGEMENTS = ("received", "opened", "clicked")


@dataclass(frozen=True)
class MessageFilter:
    """A key narrowing the messages by what sent them: `lookups(value)` are
    filter() keywords over Message, `missing(values)` the values that name nothing."""

    lookups: object
    missing: object


FILTERS = {
    "template": MessageFilter(
        lookups=lambda pk: {"template_id": pk},
        missing=lambda pks: (
            pks - set(Template.objects.filter(pk__in=pks).values_list("pk", flat=True))
        ),
    ),
    "message_type": MessageFilter(
        lookups=lambda pk: {"message_type_id": pk},
        missing=lambda pks: (
            pks - set(MessageType.objects.filter(pk__in=pks).values_list("pk", flat=True))
        ),
    ),
}


def register_message_filter(key: str, message_filter: MessageFilter) -> None:
    """Let a higher app narrow messages by what it knows (journeys: "journey")."""
    FILTERS[key] = message_filter


def _check(tree):
    if tree["message"] not in ENGAGEMENTS:
        raise ConditionError(
            f"message conditions look for {', '.join(ENGAGEMENTS)}, not {tree['message']!r}"
        )
    if tree.get("op") not in ("done", "not_done"):
        raise ConditionError("message conditions take op 'done' or 'not_done'")
    check_days(tree)
    for key in tree.keys() - {"message", "op", "within_days"}:
        if key not in FILTERS:
            known = ", ".join(FILTERS)
            raise ConditionError(f"message conditions are narrowed by {known}, not {key!r}")
        if not isinstance(tree[key], int) or isinstance(tree[key], bool):
            raise ConditionError(f"a {key.replace('_', ' ')} is named by its id, not {tree[key]!r}")


def _references(leaves):
    for key, message_filter in FILTERS.items():
        missing = message_filter.missing({leaf[key] for leaf in leaves if key in leaf})
        if missing:
            ids = ", ".join(map(str, sorted(missing)))
            raise ConditionError(f"there is no {key.replace('_', ' ')} with id {ids}")


def _compile(tree, *, now):
    messages = {"is_test": False}
    for key, message_filter in FILTERS.items():
        if key in tree:
            messages.update(message_filter.lookups(tree[key]))
    since = now - timedelta(days=tree["within_days"]) if tree.get("within_days") else None
    if tree["message"] == "received":
        # Served by the (contact, sent_at) index.
        rows = Message.objects.filter(
            contact=OuterRef("pk"), status=Message.Status.SENT, **messages
        )
        if since:
            rows = rows.filter(sent_at__gte=since)
    else:
        # Served by the (contact, occurred_at) index of engagements.
        rows = Engagement.objects.filter(
            contact=OuterRef("pk"),
            kind=tree["message"],
            **{f"message__{lookup}": value for lookup, value in messages.items()},
        )
        if since:
            rows = rows.filter(occurred_at__gte=since)
    done = Exists(rows)
    return Q(done) if tree["op"] == "done" else ~Q(done)


register_leaf("message", Leaf(check=_check, references=_references, compile=_compile))

# The condition editor offers templates and message types by name.
register_condition_choices(
    "template",
    lambda: Template.objects.order_by("name").values_list("pk", "name")[:MAX_CHOICES],
)
register_condition_choices(
    "message_type",
    lambda: MessageType.objects.order_by("name").values_list("pk", "name")[:MAX_CHOICES],
)
