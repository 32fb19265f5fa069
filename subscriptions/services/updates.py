"""Subscription changes an integrator asks for through the API, for one user
or a thousand at once, in a number of queries that does not grow with them.

The rules are subscription_set's (a double-opt-in type awaits confirmation,
a transactional channel cannot be left, setting what is already set writes
nothing), applied to many contacts with set-based SQL: one ledger record
per real change, and the same subscription_changed signal, on which
messaging sends confirmation emails.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from contacts.models import Contact
from subscriptions.models import Channel, MessageType, Subscription
from subscriptions.services.batch import Catalogue, ConsentBatch, contacts_for
from subscriptions.services.consent import ConsentError

Status = Subscription.Status
Policy = MessageType.Policy


@dataclass(frozen=True)
class SubscriptionsUpdate:
    """One user's subscription state as Iterable's updateSubscriptions gives it.

    A field left None is left as it is; a list replaces what is stored (an
    empty one: nothing in it).
    """

    email: str | None = None
    user_id: str | None = None
    email_list_ids: Sequence[int] | None = None
    unsubscribed_channel_ids: Sequence[int] | None = None
    # Every type listed is unsubscribed; an opt-out type left out receives again.
    unsubscribed_message_type_ids: Sequence[int] | None = None
    # Every type listed is subscribed (double opt-in: awaits confirmation); an
    # opt-in type left out that was subscribed is unsubscribed.
    subscribed_message_type_ids: Sequence[int] | None = None
    # Unknown ids are refused when true, ignored when false.
    validate_ids: bool = False
    # Refuse subscribing to a message type of a channel the user is (or, with
    # this update, will be) unsubscribed from.
    validate_channel_alignment: bool = True


@dataclass(frozen=True)
class UpdateFailure:
    index: int
    email: str | None
    user_id: str | None
    reason: str
    # "invalid" (the update itself), "conflict" (the userId is another
    # user's) or "unknown_user" (nobody to unsubscribe).
    kind: str = "invalid"


@dataclass(frozen=True)
class SubscriptionsUpdated:
    # Positions (in the order given) of the updates applied.
    applied: tuple[int, ...]
    failures: tuple[UpdateFailure, ...]
    # Ledger records written: one per real change.
    consent_changes: int = 0
    list_changes: int = 0


class SubscriptionGroup:
    """What Iterable's /api/subscriptions/{subscriptionGroup}/... may name."""

    EMAIL_LIST = "emaillist"
    MESSAGE_TYPE = "messagetype"
    MESSAGE_CHANNEL = "messagechannel"
    ALL = (EMAIL_LIST, MESSAGE_TYPE, MESSAGE_CHANNEL)


def _check_update(update: SubscriptionsUpdate, catalogue: Catalogue) -> str | None:
    """Why this update is refused before anything is read, or None."""
    unknown = []
    for name, ids, known in (
        ("list", update.email_list_ids, catalogue.list_ids),
        ("channel", update.unsubscribed_channel_ids, catalogue.channels),
        ("message type", update.unsubscribed_message_type_ids, catalogue.message_types),
        ("message type", update.subscribed_message_type_ids, catalogue.message_types),
    ):
        unknown += [f"{name} {pk}" for pk in ids or () if pk not in known]
    if unknown and update.validate_ids:
        return "Unknown ids: " + ", ".join(unknown) + "."
    both = set(update.unsubscribed_message_type_ids or ()) & set(
        update.subscribed_message_type_ids or ()
    )
    if both:
        return "Message types both subscribed and unsubscribed: " + ", ".join(
            str(pk) for pk in sorted(both)
        )
    if update.validate_channel_alignment:
        leaving = set(update.unsubscribed_channel_ids or ())
        for pk in update.subscribed_message_type_ids or ():
            message_type = catalogue.message_types.get(pk)
            if message_type and message_type.channel_id in leaving:
                return _misaligned(message_type)
    for pk in update.unsubscribed_channel_ids or ():
        channel = catalogue.channels.get(pk)
        if channel and channel.is_transactional:
            return f"Channel {pk} ({channel}) is transactional: it cannot be unsubscribed from."
    for pk in update.unsubscribed_message_type_ids or ():
        message_type = catalogue.message_types.get(pk)
        if message_type and message_type.channel.is_transactional:
            return (
                f"Message type {pk} ({message_type}) is transactional: "
                "it cannot be unsubscribed from."
            )
    return None


def _misaligned(message_type):
    return (
        f"Message type {message_type.pk} ({message_type}) belongs to a channel the user is "
        "unsubscribed from (see validateChannelAlignment)."
    )


def _apply_update(batch: ConsentBatch, contact_id: int, update: SubscriptionsUpdate) -> str | None:
    """Apply one update to the batch's state; or return why it is refused,
    having changed nothing."""
    catalogue = batch.catalogue
    channels = catalogue.channels
    types = catalogue.message_types
    unsubscribed_channels = (
        {pk for pk in update.unsubscribed_channel_ids if pk in channels}
        if update.unsubscribed_channel_ids is not None
        else None
    )
    if update.validate_channel_alignment and update.subscribed_message_type_ids:
        for pk in update.subscribed_message_type_ids:
            message_type = types.get(pk)
            if message_type is None:
                continue
            row = batch.type_row(contact_id, pk)
            if row is not None and row.status in (Status.SUBSCRIBED, Status.PENDING):
                continue
            channel_id = message_type.channel_id
            leaves = (
                channel_id in unsubscribed_channels
                if unsubscribed_channels is not None
                else batch.channel_status(contact_id, channel_id) == Status.UNSUBSCRIBED
            )
            if leaves:
                return _misaligned(message_type)
    if unsubscribed_channels is not None:
        for channel in channels.values():
            batch.set_channel(contact_id, channel, receive=channel.pk not in unsubscribed_channels)
    if update.unsubscribed_message_type_ids is not None:
        unsubscribed = set(update.unsubscribed_message_type_ids)
        for message_type in types.values():
            if message_type.pk in unsubscribed:
                batch.set_message_type(contact_id, message_type, receive=False)
            elif message_type.policy == Policy.OPT_OUT:
                batch.set_message_type(contact_id, message_type, receive=True)
    if update.subscribed_message_type_ids is not None:
        subscribed = set(update.subscribed_message_type_ids)
        for message_type in types.values():
            if message_type.pk in subscribed:
                batch.set_message_type(contact_id, message_type, receive=True)
            elif message_type.policy != Policy.OPT_OUT:
                row = batch.type_row(contact_id, message_type.pk)
                # One awaiting confirmation was asked for and is not
                # subscribed yet: left to its confirmation link.
                if row is not None and row.status == Status.SUBSCRIBED:
                    batch.set_message_type(contact_id, message_type, receive=False)
    if update.email_list_ids is not None:
        wanted = {pk for pk in update.email_list_ids if pk in catalogue.list_ids}
        for list_id in batch.list_ids(contact_id) - wanted:
            batch.leave(contact_id, list_id)
        for list_id in sorted(wanted):
            batch.join(contact_id, list_id)
    return None


def subscriptions_update(
    *, updates: Sequence[SubscriptionsUpdate], source: str, note: str = ""
) -> SubscriptionsUpdated:
    """Apply Iterable-style subscription updates, each to one user (created
    when unknown), in one transaction and a fixed number of queries.

    Each update either applies whole or fails whole with a reason (an
    unknown id under validate_ids, a transactional channel or type to leave,
    a message type of an unsubscribed channel under
    validate_channel_alignment, a userId that belongs to another user);
    the others apply. Updates naming the same user apply in order.
    """
    updates = list(updates)
    list_ids = {pk for update in updates for pk in update.email_list_ids or ()}
    catalogue = Catalogue(list_ids=list_ids)
    failures = {}
    for index, update in enumerate(updates):
        reason = _check_update(update, catalogue)
        if reason:
            failures[index] = ("invalid", reason)
    with transaction.atomic():
        contacts = contacts_for(
            {
                index: (update.email, update.user_id)
                for index, update in enumerate(updates)
                if index not in failures
            },
            create=True,
        )
        batch = ConsentBatch(
            contact_ids=sorted({c.pk for c in contacts.values() if isinstance(c, Contact)}),
            catalogue=catalogue,
            source=source,
            note=note,
            with_lists=any(update.email_list_ids is not None for update in updates),
        )
        batch.load()
        for index, contact in contacts.items():
            if not isinstance(contact, Contact):
                failures[index] = contact
                continue
            reason = _apply_update(batch, contact.pk, updates[index])
            if reason:
                failures[index] = ("invalid", reason)
        consent_changes, list_changes = batch.save()
    return SubscriptionsUpdated(
        applied=tuple(i for i in range(len(updates)) if i not in failures),
        failures=tuple(
            UpdateFailure(i, updates[i].email, updates[i].user_id, reason, kind)
            for i, (kind, reason) in sorted(failures.items())
        ),
        consent_changes=consent_changes,
        list_changes=list_changes,
    )


def subscription_group_set(
    *,
    users: Sequence[tuple[str | None, str | None]],
    group: str,
    group_id: int,
    subscribe: bool,
    source: str,
    note: str = "",
) -> SubscriptionsUpdated:
    """Subscribe users to, or unsubscribe them from, one list, channel or
    message type (Iterable's subscription groups), in a fixed number of queries.

    `users` are (email, userId) pairs. Subscribing creates unknown users;
    unsubscribing fails for them (nothing to unsubscribe). Raises
    ConsentError, changing nothing, for an unknown group or id, or for
    leaving a transactional channel or message type.
    """
    group = group.lower()
    if group not in SubscriptionGroup.ALL:
        raise ConsentError(
            f"Unknown subscription group {group!r}: emailList, messageType or messageChannel."
        )
    catalogue = Catalogue(list_ids=[group_id] if group == SubscriptionGroup.EMAIL_LIST else ())
    known = {
        SubscriptionGroup.EMAIL_LIST: catalogue.list_ids,
        SubscriptionGroup.MESSAGE_TYPE: catalogue.message_types,
        SubscriptionGroup.MESSAGE_CHANNEL: catalogue.channels,
    }[group]
    if group_id not in known:
        raise ConsentError(f"No {group} with id {group_id}.")
    if not subscribe and group != SubscriptionGroup.EMAIL_LIST:
        scope = known[group_id]
        channel = scope if isinstance(scope, Channel) else scope.channel
        if channel.is_transactional:
            raise ConsentError(f"{scope} is transactional: it cannot be unsubscribed from.")
    users = list(users)
    with transaction.atomic():
        contacts = contacts_for(dict(enumerate(users)), create=subscribe)
        batch = ConsentBatch(
            contact_ids=sorted({c.pk for c in contacts.values() if isinstance(c, Contact)}),
            catalogue=catalogue,
            source=source,
            note=note,
            with_lists=group == SubscriptionGroup.EMAIL_LIST,
        )
        batch.load()
        failures = {}
        for index, contact in contacts.items():
            if not isinstance(contact, Contact):
                failures[index] = contact
            elif group == SubscriptionGroup.EMAIL_LIST:
                (batch.join if subscribe else batch.leave)(contact.pk, group_id)
            elif group == SubscriptionGroup.MESSAGE_TYPE:
                batch.set_message_type(contact.pk, known[group_id], receive=subscribe)
            else:
                batch.set_channel(contact.pk, known[group_id], receive=subscribe)
        consent_changes, list_changes = batch.save()
    return SubscriptionsUpdated(
        applied=tuple(i for i in range(len(users)) if i not in failures),
        failures=tuple(
            UpdateFailure(i, users[i][0], users[i][1], reason, kind)
            for i, (kind, reason) in sorted(failures.items())
        ),
        consent_changes=consent_changes,
        list_changes=list_changes,
    )


def marketing_email_unsubscribe(*, contact_ids, source: str, note: str = "") -> int:
    """Unsubscribe these contacts from every marketing email channel (what
    Iterable's channelUnsubscribe means), with a ledger entry for each real
    change, in a fixed number of queries. Returns how many changes."""
    contact_ids = sorted(set(contact_ids))
    catalogue = Catalogue()
    channels = [
        channel
        for channel in catalogue.channels.values()
        if channel.medium == Channel.Medium.EMAIL and channel.kind == Channel.Kind.MARKETING
    ]
    if not contact_ids or not channels:
        return 0
    with transaction.atomic():
        batch = ConsentBatch(contact_ids=contact_ids, catalogue=catalogue, source=source, note=note)
        batch.load()
        for contact_id in contact_ids:
            for channel in channels:
                batch.set_channel(contact_id, channel, receive=False)
        consent_changes, _ = batch.save()
    return consent_changes


def double_opt_in_request(
    *,
    contact: Contact,
    message_types: Sequence[MessageType],
    source: str,
    note: str = "",
    phone: str | None = None,
) -> int:
    """Ask the contact to confirm subscriptions to double-opt-in message types:
    each one not yet subscribed awaits confirmation, and messaging emails the
    link (on subscription_changed). One already subscribed, or awaiting a
    link still valid, is left as it is; one whose link expired gets a new one.
    `phone` (already in E.164 form), when given, becomes the contact's phone
    number. Returns how many confirmations were asked for. Raises
    ConsentError, changing nothing, for a type that is not double opt-in.
    """
    for message_type in message_types:
        if message_type.policy != Policy.DOUBLE_OPT_IN:
            raise ConsentError(f"Message type {message_type.pk} is not a double opt-in type.")
    catalogue = Catalogue()
    with transaction.atomic():
        batch = ConsentBatch(
            contact_ids=[contact.pk], catalogue=catalogue, source=source, note=note
        )
        batch.load()
        if phone and phone != contact.phone:
            contact.phone = phone
            contact.save(update_fields=["phone", "updated_at"])
        for message_type in message_types:
            batch.set_message_type(
                contact.pk, catalogue.message_types[message_type.pk], receive=True
            )
        consent_changes, _ = batch.save()
    return consent_changes
