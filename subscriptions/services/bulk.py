"""Consent changes for many contacts at once (a CSV import's consent columns):
the rules of subscription_set (subscriptions.services.batch.consent_next),
applied in memory to the current state read in one query, written back with
three set-based statements (new subscriptions, changed ones, the ledger),
whatever the number of changes.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone

from contacts.models import Contact
from contacts.sql import array_literal
from subscriptions.models import ConsentRecord, Subscription
from subscriptions.services.batch import Catalogue, ConsentBatch, consent_next
from subscriptions.services.consent import ConsentError
from subscriptions.signals import subscription_changed, subscriptions_changed

Status = Subscription.Status
Action = ConsentRecord.Action

_STATUSES = [Status.SUBSCRIBED.value, Status.UNSUBSCRIBED.value, Status.PENDING.value]
# PostgreSQL arrays count from 1.
_STATUS_CODE = {status: position for position, status in enumerate(_STATUSES, start=1)}
_ACTION_NAMES = [
    Action.SUBSCRIBED.value,
    Action.UNSUBSCRIBED.value,
    Action.CONFIRMATION_REQUESTED.value,
]
_ACTION_CODE = {action: position for position, action in enumerate(_ACTION_NAMES, start=1)}

_ACTIONS = {
    Status.SUBSCRIBED: Action.SUBSCRIBED,
    Status.UNSUBSCRIBED: Action.UNSUBSCRIBED,
    Status.PENDING: Action.CONFIRMATION_REQUESTED,
}


@dataclass(frozen=True)
class ConsentAsk:
    """One contact asking to receive (or not) one channel or one message type."""

    contact_id: int
    scope: str  # "channel" or "message_type"
    scope_id: int
    receive: bool


@dataclass(frozen=True)
class ConsentsApplied:
    # Consent records written (one per real change).
    changes: int
    # {position in the asks: why it was refused} (an unsubscribe from a
    # transactional channel, a channel or message type that is gone).
    refused: dict


def consents_apply(
    *, asks: list[ConsentAsk], source: str, note: str = "", catalogue: Catalogue | None = None
) -> ConsentsApplied:
    """Apply `asks` in order, as subscription_set would one by one: a
    Subscription written and a ConsentRecord (`source`, `note`) for each real
    change, subscription_changed for each and subscriptions_changed once.
    Runs in the caller's transaction; the contacts are locked in id order, as
    subscription_set locks one. A constant number of queries, however many asks.
    """
    if not asks:
        return ConsentsApplied(0, {})
    if connection.vendor != "postgresql":
        return _apply_in_batch(asks, source, note, catalogue)
    catalogue = catalogue or Catalogue()
    now = timezone.now()
    contact_ids = sorted({ask.contact_id for ask in asks})
    state = _locked_state(contact_ids, asks)

    refused, records = {}, []
    touched = {}  # key -> (previous status, subscription id or None)
    for position, ask in enumerate(asks):
        key = (ask.contact_id, ask.scope, ask.scope_id)
        sub_id, current, current_at = state.get(key, (None, None, None))
        try:
            change = _change(catalogue, ask, current, current_at)
        except ConsentError as exc:
            refused[position] = str(exc)
            continue
        if change is None:
            continue
        status, again = change
        touched.setdefault(key, (current, sub_id))
        state[key] = (sub_id, status, now)
        records.append((key, _ACTIONS[status], again))

    changed = _write(touched, state, records, source, note, now)
    for subscription, previous in changed:
        subscription_changed.send(
            sender=Subscription, subscription=subscription, previous_status=previous
        )
    if changed:
        subscriptions_changed.send(sender=Subscription, changes=changed)
    return ConsentsApplied(len(records), refused)


def _note(note, *, again):
    if again:
        note = f"{note} The earlier confirmation link had expired."
    return note.strip()[:255]


def _change(catalogue, ask, current, current_at):
    if ask.scope == "channel":
        channel = catalogue.channels.get(ask.scope_id)
        if channel is None:
            raise ConsentError(f"There is no channel {ask.scope_id} any more.")
        return consent_next(channel=channel, receive=ask.receive, current=current)
    message_type = catalogue.message_types.get(ask.scope_id)
    if message_type is None:
        raise ConsentError(f"There is no message type {ask.scope_id} any more.")
    return consent_next(
        message_type=message_type, receive=ask.receive, current=current, current_at=current_at
    )


def _locked_state(contact_ids, asks) -> dict:
    """{(contact id, scope, scope id): (subscription id, status, updated_at)} of
    the scopes asked about, read after locking the contacts."""
    contacts = Contact._meta.db_table
    subscriptions = Subscription._meta.db_table
    channel_ids = sorted({ask.scope_id for ask in asks if ask.scope == "channel"})
    type_ids = sorted({ask.scope_id for ask in asks if ask.scope != "channel"})
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {contacts} WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
            [array_literal(contact_ids)],
        )
        # One arm per kind of scope, each on its own (contact, scope) index: with
        # an OR the planner reads every subscription of the table instead.
        select = (
            "SELECT s.id, s.contact_id, s.channel_id, s.message_type_id, s.status, s.updated_at "
            f"FROM unnest(%s::bigint[]) AS c(id) JOIN {subscriptions} AS s ON s.contact_id = c.id "
        )
        cursor.execute(
            f"{select} WHERE s.channel_id = ANY(%s::bigint[]) "
            f"UNION ALL {select} WHERE s.message_type_id = ANY(%s::bigint[])",
            [array_literal(ids) for ids in (contact_ids, channel_ids, contact_ids, type_ids)],
        )
        rows = cursor.fetchall()
    state = {}
    for pk, contact_id, channel_id, type_id, status, updated_at in rows:
        scope = ("channel", channel_id) if channel_id else ("message_type", type_id)
        state[(contact_id, *scope)] = (pk, status, updated_at)
    return state


def _write(touched, state, records, source, note, now: datetime) -> list:
    """Write the touched subscriptions and the records; (Subscription, previous) pairs."""
    if not touched:
        return []
    subscriptions = Subscription._meta.db_table
    new = [key for key, (_, sub_id) in touched.items() if sub_id is None]
    old = [key for key, (_, sub_id) in touched.items() if sub_id is not None]
    ids = {}
    with connection.cursor() as cursor:
        if new:
            cursor.execute(
                f"INSERT INTO {subscriptions} "
                "(contact_id, channel_id, message_type_id, status, source, updated_at) "
                "SELECT c, ch, mt, (%s::text[])[st], %s, %s "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::integer[]) "
                "AS v(c, ch, mt, st) "
                "RETURNING id, contact_id, channel_id, message_type_id",
                [
                    _STATUSES,
                    source,
                    now,
                    array_literal(key[0] for key in new),
                    array_literal(key[2] if key[1] == "channel" else None for key in new),
                    array_literal(key[2] if key[1] != "channel" else None for key in new),
                    array_literal(_STATUS_CODE[state[key][1]] for key in new),
                ],
            )
            for pk, contact_id, channel_id, type_id in cursor.fetchall():
                scope = ("channel", channel_id) if channel_id else ("message_type", type_id)
                ids[(contact_id, *scope)] = pk
        if old:
            cursor.execute(
                f"UPDATE {subscriptions} AS s SET status = (%s::text[])[v.st], source = %s, "
                "updated_at = %s FROM unnest(%s::bigint[], %s::integer[]) AS v(id, st) "
                "WHERE s.id = v.id",
                [
                    _STATUSES,
                    source,
                    now,
                    array_literal(touched[key][1] for key in old),
                    array_literal(_STATUS_CODE[state[key][1]] for key in old),
                ],
            )
        cursor.execute(
            f"INSERT INTO {ConsentRecord._meta.db_table} "
            "(contact_id, channel_id, message_type_id, action, source, note, user_agent, "
            "created_at) "
            "SELECT c, ch, mt, (%s::text[])[a], %s, CASE WHEN again THEN %s ELSE %s END, '', %s "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::integer[], %s::boolean[]) "
            "AS r(c, ch, mt, a, again)",
            [
                _ACTION_NAMES,
                source,
                _note(note, again=True),
                _note(note, again=False),
                now,
                array_literal(key[0] for key, _, _ in records),
                array_literal(key[2] if key[1] == "channel" else None for key, _, _ in records),
                array_literal(key[2] if key[1] != "channel" else None for key, _, _ in records),
                array_literal(_ACTION_CODE[action] for _, action, _ in records),
                array_literal(again for _, _, again in records),
            ],
        )
    names = [field.attname for field in Subscription._meta.concrete_fields]
    changed = []
    for key, (previous, sub_id) in touched.items():
        contact_id, scope, scope_id = key
        values = {
            "id": sub_id or ids[key],
            "contact_id": contact_id,
            "channel_id": scope_id if scope == "channel" else None,
            "message_type_id": scope_id if scope != "channel" else None,
            "status": state[key][1],
            "source": source,
            "updated_at": now,
        }
        # As loaded from the database (positional: the cheap way to build tens of thousands).
        subscription = Subscription.from_db(connection.alias, names, [values[n] for n in names])
        changed.append((subscription, previous))
    return changed


def _apply_in_batch(asks, source, note, catalogue) -> ConsentsApplied:
    """The same through ConsentBatch, for SQLite (the embedded default)."""
    batch = ConsentBatch(
        contact_ids=sorted({ask.contact_id for ask in asks}),
        catalogue=catalogue or Catalogue(),
        source=source,
        note=note,
    )
    batch.load()
    refused = {}
    for position, ask in enumerate(asks):
        try:
            if ask.scope == "channel":
                channel = batch.catalogue.channels.get(ask.scope_id)
                if channel is None:
                    raise ConsentError(f"There is no channel {ask.scope_id} any more.")
                batch.set_channel(ask.contact_id, channel, receive=ask.receive)
            else:
                message_type = batch.catalogue.message_types.get(ask.scope_id)
                if message_type is None:
                    raise ConsentError(f"There is no message type {ask.scope_id} any more.")
                batch.set_message_type(ask.contact_id, message_type, receive=ask.receive)
        except ConsentError as exc:
            refused[position] = str(exc)
    changes, _ = batch.save()
    return ConsentsApplied(changes, refused)
