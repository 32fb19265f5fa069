"""Journeys as documents: export a journey to JSON and import one as a draft.

The format is documented in docs/journey-format.md. Steps are named by their
key and connected by label ("next", "yes", "no"), never by database ids, so a
document moves between installations; templates, lists, segments, message
types and journeys are named by their names, in condition trees too.
"""

from dataclasses import dataclass
from datetime import datetime, time

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from contacts.models import ContactList, Segment
from journeys.models import (
    ConditionStep,
    Connection,
    DelayStep,
    ExitStep,
    HoldoutStep,
    Journey,
    JourneyTrigger,
    NotifyStaffStep,
    RandomSplitStep,
    SendMessageStep,
    SplitStep,
    StartJourneyStep,
    Step,
    UpdateContactStep,
    WaitForEventStep,
    WebhookStep,
)
from journeys.services.graph import StepLinkError, step_connect
from messaging.models import Template
from subscriptions.models import Channel, MessageType

FORMAT = "waymark.journey/1"

# type name -> (model, its own settings as they appear in the document,
# settings that appear only when not at their default)
STEP_TYPES = {
    "send_message": (SendMessageStep, ("template",), ()),
    "delay": (
        DelayStep,
        ("amount", "unit"),
        ("wait_until", "at_time", "weekdays", "date_attribute", "offset_days"),
    ),
    "wait_for_event": (
        WaitForEventStep,
        ("event_name", "timeout_amount", "timeout_unit"),
        ("data_filter", "correlation_key", "engagement", "engagement_step"),
    ),
    "condition": (
        ConditionStep,
        ("kind", "attribute", "operator", "value", "event_name"),
        ("condition",),
    ),
    "split": (SplitStep, ("branches",), ()),
    "random_split": (RandomSplitStep, ("weights",), ()),
    "holdout": (HoldoutStep, ("percent",), ()),
    "update_contact": (
        UpdateContactStep,
        ("action",),
        ("attribute", "value", "contact_list", "message_type", "channel"),
    ),
    "start_journey": (StartJourneyStep, ("target",), ()),
    "webhook": (
        WebhookStep,
        ("method", "url"),
        ("headers", "body", "timeout", "retries", "save_to_attributes", "save_to_data"),
    ),
    "notify_staff": (NotifyStaffStep, ("recipients", "subject"), ("staff_group", "body")),
    "exit": (ExitStep, (), ()),
}
# Settings that name another object: by a name that holds across installations.
_NAMED = {
    "template": (Template, lambda t: t.name, lambda name: {"name": name}),
    "contact_list": (ContactList, lambda c: c.name, lambda name: {"name": name}),
    "channel": (Channel, lambda c: c.name, lambda name: {"name": name}),
    "target": (Journey, lambda j: j.name, lambda name: {"name": name}),
    "staff_group": (Group, lambda g: g.name, lambda name: {"name": name}),
    # "Channel / type": a message type's name is unique within its channel.
    "message_type": (
        MessageType,
        lambda m: f"{m.channel.name} / {m.name}",
        lambda text: (
            dict(zip(("channel__name", "name"), str(text).split(" / ", 1), strict=False))
            if " / " in str(text)
            else {"pk": None}
        ),
    ),
}
# Settings that name another step of the journey: by its key.
_STEP_REFS = ("engagement_step",)
# Settings holding condition trees (a split's branches: a list of them).
_TREES = ("condition", "branches")
# A condition tree names lists, segments, templates, message types and
# journeys by id in the database, and by name in a document.
_TREE_NAMED = {
    "list": _NAMED["contact_list"],
    "segment": (Segment, lambda s: s.name, lambda name: {"name": name}),
    "template": _NAMED["template"],
    "message_type": _NAMED["message_type"],
    "journey": _NAMED["target"],
}
_TYPE_OF = {model: name for name, (model, _, _) in STEP_TYPES.items()}
JOURNEY_FIELDS = (
    "folder",
    "description",
    "reentry",
    "reentry_period_days",
    "exit_event_name",
    "goal_event_name",
    "goal_window_days",
)


class JourneyImportError(ValueError):
    """The document cannot be imported; the message says where and why."""


def journey_export(*, journey: Journey) -> dict:
    """The document describing `journey` (its definition, not its contacts)."""
    steps = list(journey.steps.order_by("position", "id"))
    key_of = {step.pk: step.key for step in steps}
    connections_of = {}
    for step_id, label, target_id in Connection.objects.filter(step__journey=journey).values_list(
        "step_id", "label", "target_id"
    ):
        connections_of.setdefault(step_id, {})[label] = target_id
    exported = []
    for step in steps:
        type_name = _TYPE_OF[type(step)]
        entry = {"key": step.key, "type": type_name}
        if step.name:
            entry["name"] = step.name
        _, settings_fields, optional = STEP_TYPES[type_name]
        for field in (*settings_fields, *optional):
            if field in _STEP_REFS:
                if target_id := getattr(step, f"{field}_id"):
                    entry[field] = key_of[target_id]
                continue
            value = getattr(step, field)
            if field in optional and value == step._meta.get_field(field).get_default():
                continue
            if field in _NAMED:
                value = None if value is None else _NAMED[field][1](value)
            elif field in _TREES:
                value = _tree_named(value)
            elif isinstance(value, time):
                value = value.isoformat()
            entry[field] = value
        targets = connections_of.get(step.pk, {})
        connections = {
            label: key_of[targets[label]] for label in step.connection_labels() if label in targets
        }
        if connections:
            entry["connections"] = connections
        exported.append(entry)
    return {
        "format": FORMAT,
        "name": journey.name,
        **{field: getattr(journey, field) for field in JOURNEY_FIELDS},
        "audience": journey.audience,
        "triggers": [_trigger_export(t) for t in journey.triggers.order_by("id")],
        "steps": exported,
    }


# Trigger kind -> its settings in the document: (document key, model field).
# Named objects are written by name, times and datetimes in ISO 8601.
TRIGGER_FIELDS = {
    JourneyTrigger.Kind.EVENT: (("event_name", "event_name"), ("filter", "event_filter")),
    JourneyTrigger.Kind.LIST_JOIN: (("list", "contact_list"),),
    JourneyTrigger.Kind.SEGMENT_ENTRY: (("segment", "segment"),),
    JourneyTrigger.Kind.API: (),
    JourneyTrigger.Kind.SCHEDULE: (
        ("list", "contact_list"),
        ("segment", "segment"),
        ("starts_at", "starts_at"),
        ("every", "every"),
        ("every_unit", "every_unit"),
        ("at_local_time", "at_local_time"),
    ),
    JourneyTrigger.Kind.DATE_ATTRIBUTE: (
        ("date_attribute", "date_attribute"),
        ("offset_days", "offset_days"),
        ("yearly", "yearly"),
        ("at_local_time", "at_local_time"),
    ),
    JourneyTrigger.Kind.JOURNEY: (("journey", "source_journey"),),
    JourneyTrigger.Kind.SUBSCRIPTION: (
        ("channel", "channel"),
        ("message_type", "message_type"),
        ("change", "subscription_change"),
    ),
}
_TRIGGER_NAMED = {
    "contact_list": _NAMED["contact_list"],
    "segment": (Segment, lambda s: s.name, lambda name: {"name": name}),
    "source_journey": _NAMED["target"],
    "channel": _NAMED["channel"],
    "message_type": _NAMED["message_type"],
}


def _trigger_export(trigger) -> dict:
    entry = {"type": trigger.kind}
    for key, field in TRIGGER_FIELDS[trigger.kind]:
        value = getattr(trigger, field)
        if value in (None, "", {}) and field != "source_journey":
            continue
        if field in _TRIGGER_NAMED:
            value = None if value is None else _TRIGGER_NAMED[field][1](value)
        elif isinstance(value, time | datetime):
            value = value.isoformat()
        entry[key] = value
    return entry


def _parse_trigger(index, entry) -> JourneyTrigger:
    where = f"triggers[{index}]"
    _require(isinstance(entry, dict), f"{where} must be an object.")
    kind = entry.get("type")
    _require(
        kind in TRIGGER_FIELDS,
        f"{where}: unknown type {kind!r}; one of {', '.join(TRIGGER_FIELDS)}.",
    )
    fields = dict(TRIGGER_FIELDS[kind])
    unknown = sorted(set(entry) - {"type", *fields})
    _require(not unknown, f"{where}: unknown field(s) {', '.join(unknown)} for a {kind} trigger.")
    values = {"kind": kind}
    for key, field in fields.items():
        if entry.get(key) is None:
            continue
        if field in _TRIGGER_NAMED:
            model, _, lookup = _TRIGGER_NAMED[field]
            found = model.objects.filter(**lookup(entry[key])).first()
            _require(found, f"{where}: no {key.replace('_', ' ')} {entry[key]!r}.")
            values[field] = found
        else:
            values[field] = entry[key]
    return JourneyTrigger(**values)


def _tree_map(tree, convert):
    """The tree with `convert(key, value)` applied to each value naming a row."""
    if isinstance(tree, list):
        return [_tree_map(item, convert) for item in tree]
    if not isinstance(tree, dict):
        return tree
    return {
        key: convert(key, value)
        if key in _TREE_NAMED and not isinstance(value, dict | list)
        else _tree_map(value, convert)
        for key, value in tree.items()
    }


def _tree_named(tree):
    def name(key, pk):
        model, name_of, _ = _TREE_NAMED[key]
        found = model.objects.filter(pk=pk).first() if isinstance(pk, int) else None
        return name_of(found) if found else pk  # a dangling id stays, and import refuses it

    return _tree_map(tree, name)


def _tree_with_ids(tree, where):
    def pk(key, name):
        if not isinstance(name, str):
            return name
        model, _, lookup = _TREE_NAMED[key]
        found = model.objects.filter(**lookup(name)).first()
        _require(found, f"{where}: condition: no {key.replace('_', ' ')} {name!r}.")
        return found.pk

    return _tree_map(tree, pk)


@dataclass(frozen=True)
class _Parsed:
    step: Step
    connections: dict
    refs: dict  # setting -> key of the step it names


def _require(condition, message):
    if not condition:
        raise JourneyImportError(message)


def _parse_step(index, entry, templates) -> _Parsed:
    where = f"steps[{index}]"
    _require(isinstance(entry, dict), f"{where} must be an object.")
    type_name = entry.get("type")
    _require(
        type_name in STEP_TYPES,
        f"{where}: unknown type {type_name!r}; one of {', '.join(STEP_TYPES)}.",
    )
    model, settings_fields, optional = STEP_TYPES[type_name]
    settings_fields = (*settings_fields, *optional)
    allowed = {"key", "type", "name", "connections", *settings_fields}
    unknown = sorted(set(entry) - allowed)
    _require(not unknown, f"{where}: unknown field(s) {', '.join(unknown)} for a {type_name} step.")
    key = entry.get("key")
    _require(isinstance(key, str) and key, f"{where}: every step needs a key.")
    values = {"key": key, "name": entry.get("name") or ""}
    refs = {}
    for field in settings_fields:
        if field not in entry:
            continue
        if field in _STEP_REFS:
            refs[field] = entry[field]
        elif field == "template":
            template = templates.get(entry[field])
            _require(template, f"{where} ({key}): no template is named {entry[field]!r}.")
            values["template"] = template
        elif field in _NAMED:
            model_, _, lookup = _NAMED[field]
            found = model_.objects.filter(**lookup(entry[field])).first()
            _require(found, f"{where} ({key}): no {field.replace('_', ' ')} {entry[field]!r}.")
            values[field] = found
        elif field in _TREES:
            values[field] = _tree_with_ids(entry[field], f"{where} ({key})")
        else:
            values[field] = entry[field]
    if type_name == "send_message":
        _require("template" in values, f"{where} ({key}): a send_message step names its template.")
    connections = entry.get("connections") or {}
    _require(isinstance(connections, dict), f"{where} ({key}): connections must be an object.")
    step = model(**values)
    labels = step.connection_labels()
    if "next" in connections and "next" not in labels:
        # Older documents gave a condition a "next" for the branch left out.
        connections = dict(connections)
        default = connections.pop("next")
        connections = {**dict.fromkeys(labels, default), **connections}
    bad = sorted(set(connections) - set(labels))
    _require(
        not bad,
        f"{where} ({key}): a {type_name} step has no connection {', '.join(map(repr, bad))}"
        f" (it has: {', '.join(labels) or 'none'}).",
    )
    return _Parsed(step=step, connections=connections, refs=refs)


def journey_import(*, document, name: str | None = None, actor=None) -> Journey:
    """Create the journey `document` describes, as a draft named `name` (else
    the document's). Raises JourneyImportError, having written nothing, for a
    document that is not one, a name already taken, a template that does not
    exist, or a connection to a step the document does not hold."""
    _require(isinstance(document, dict), "A journey document is a JSON object.")
    _require(
        document.get("format") == FORMAT,
        f'Not a journey document: "format" must be "{FORMAT}".',
    )
    name = (name or document.get("name") or "").strip()
    _require(name, "The journey needs a name.")
    _require(
        not Journey.objects.filter(name=name).exists(),
        f"A journey named “{name}” already exists: import it under another name.",
    )
    if "trigger" in document and "triggers" not in document:
        # Documents written before journeys had several triggers.
        old = document["trigger"] or {}
        _require(isinstance(old, dict), '"trigger" must be an object.')
        document = {**document, "triggers": [old] if old else []}
    triggers = document.get("triggers") or []
    _require(isinstance(triggers, list), '"triggers" must be a list.')
    triggers = [_parse_trigger(index, entry) for index, entry in enumerate(triggers)]
    entries = document.get("steps")
    _require(isinstance(entries, list), '"steps" must be a list.')
    template_names = [entry.get("template") for entry in entries if isinstance(entry, dict)]
    templates = {t.name: t for t in Template.objects.filter(name__in=template_names)}
    parsed = [_parse_step(index, entry, templates) for index, entry in enumerate(entries)]
    keys = [p.step.key for p in parsed]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    _require(not duplicates, f"Step keys must be unique: {', '.join(duplicates)} repeated.")
    for p in parsed:
        for label, target in p.connections.items():
            _require(
                target in keys,
                f"Step {p.step.key!r}: its {label!r} connection names {target!r}, "
                "which is not a step of this journey.",
            )
        for field, target in p.refs.items():
            _require(
                target in keys,
                f"Step {p.step.key!r}: its {field} names {target!r}, "
                "which is not a step of this journey.",
            )

    journey = Journey(
        name=name,
        state=Journey.State.DRAFT,
        audience=document.get("audience") or {},
        created_by=actor,
        modified_by=actor,
        **{field: document[field] for field in JOURNEY_FIELDS if field in document},
    )
    try:
        with transaction.atomic():
            _full_clean(journey, "the journey")
            journey.save()
            for index, trigger in enumerate(triggers):
                trigger.journey = journey
                _full_clean(trigger, f"triggers[{index}]")
                trigger.save()
            by_key = {}
            for position, p in enumerate(parsed, start=1):
                p.step.journey = journey
                p.step.position = position
                if not p.refs:  # else checked once the steps it names exist
                    _full_clean(p.step, f"step {p.step.key!r}", exclude=["journey"])
                p.step.save()
                by_key[p.step.key] = p.step
            for p in parsed:
                if p.refs:
                    for field, target in p.refs.items():
                        setattr(p.step, field, by_key[target])
                    _full_clean(p.step, f"step {p.step.key!r}")
                    p.step.save()
            for p in parsed:
                if not p.connections:
                    continue
                try:
                    step_connect(
                        step=p.step,
                        targets={label: by_key[target] for label, target in p.connections.items()},
                    )
                except StepLinkError as exc:
                    raise JourneyImportError(f"In step {p.step.key!r}: {exc}") from None
    except IntegrityError as exc:
        raise JourneyImportError(f"The journey could not be stored: {exc}") from None
    return journey


def _full_clean(obj, what, exclude=None):
    try:
        obj.full_clean(exclude=exclude, validate_unique=False)
    except ValidationError as exc:
        details = "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()
        )
        raise JourneyImportError(f"In {what}: {details}") from None
