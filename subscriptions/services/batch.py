"""The engine under the API's subscription services: the consent state of many
contacts, read once under lock, changed in memory by subscription_set's rules,
and written back with a few set-based statements.
"""

from dataclasses import dataclass, field

from django.utils import timezone

from contacts.models import Contact, ContactList, ListMembership
from contacts.services.lists import memberships_add
from subscriptions.models import Channel, ConsentRecord, MessageType, Subscription
from subscriptions.selectors import EXPIRED, choice_status
from subscriptions.services.consent import ConsentError
from subscriptions.signals import subscription_changed, subscriptions_changed

Status = Subscription.Status
Action = ConsentRecord.Action
Policy = MessageType.Policy


class Catalogue:
    """The channels, message types and lists a request may name: read once."""

    def __init__(self, *, list_ids=()):
        self.channels = {channel.pk: channel for channel in Channel.objects.all()}
        self.message_types = {
            message_type.pk: message_type for message_type in MessageType.objects.all()
        }
        for message_type in self.message_types.values():
            message_type.channel = self.channels[message_type.channel_id]
        list_ids = set(list_ids)
        self.list_ids = (
            set(ContactList.objects.filter(pk__in=list_ids).values_list("pk", flat=True))
            if list_ids
            else set()
        )


def consent_next(
    *, receive: bool, current, current_at=None, channel=None, message_type=None
) -> tuple[str, bool] | None:
    """What asking for a channel or a message type (`receive` or not) makes of
    its `current` status (None: no row), by subscription_set's rules: the new
    status and whether it asks again for a confirmation that expired, or None
    when nothing changes. Raises ConsentError for unsubscribing from a
    transactional channel."""
    if channel is not None:
        if receive and current == Status.UNSUBSCRIBED:
            return Status.SUBSCRIBED, False
        if not receive and current != Status.UNSUBSCRIBED:
            if channel.is_transactional:
                raise ConsentError(f"{channel} is transactional: contacts cannot unsubscribe.")
            return Status.UNSUBSCRIBED, False
        return None
    if not receive:
        if current != Status.UNSUBSCRIBED:
            if message_type.channel.is_transactional:
                raise ConsentError(f"{message_type} is transactional: contacts cannot unsubscribe.")
            return Status.UNSUBSCRIBED, False
        return None
    if message_type.policy == Policy.OPT_OUT:
        # Received unless unsubscribed: lifting the unsubscribe is enough.
        return (Status.SUBSCRIBED, False) if current == Status.UNSUBSCRIBED else None
    if message_type.policy == Policy.OPT_IN:
        return (Status.SUBSCRIBED, False) if current != Status.SUBSCRIBED else None
    state = choice_status(message_type, current, current_at)
    if state == EXPIRED:
        return Status.PENDING, True
    if state not in (Status.SUBSCRIBED, Status.PENDING):
        return Status.PENDING, False
    return None


@dataclass
class ConsentBatch:
    """The locked consent state of a set of contacts, changed in memory and
    written back at the end with a few set-based statements."""

    contact_ids: list[int]
    catalogue: Catalogue
    source: str
    note: str
    with_lists: bool = False
    rows: dict = field(default_factory=dict)  # (contact_id, kind, scope_id) -> Subscription
    original: dict = field(default_factory=dict)  # same key -> status before, or None
    records: list = field(default_factory=list)
    memberships: dict = field(default_factory=dict)  # contact_id -> {list_id: membership pk}
    joins: set = field(default_factory=set)  # (contact_id, list_id)
    leaves: set = field(default_factory=set)  # membership pks
    touched: set = field(default_factory=set)  # keys of rows changed
    now: object = field(default_factory=timezone.now)

    def load(self):
        # Contacts locked in id order, as subscription_set locks one: their
        # consent changes one request at a time.
        list(
            Contact.objects.select_for_update()
            .filter(pk__in=self.contact_ids)
            .order_by("pk")
            .values_list("pk")
        )
        for row in Subscription.objects.filter(contact_id__in=self.contact_ids):
            key = _key(row.contact_id, row.channel_id, row.message_type_id)
            self.rows[key] = row
            self.original[key] = row.status
        if self.with_lists:
            for pk, contact_id, list_id in ListMembership.objects.filter(
                contact_id__in=self.contact_ids
            ).values_list("pk", "contact_id", "contact_list_id"):
                self.memberships.setdefault(contact_id, {})[list_id] = pk

    # --- reading the state as changed so far

    def channel_status(self, contact_id, channel_id):
        row = self.rows.get(_key(contact_id, channel_id, None))
        return row.status if row else None

    def type_row(self, contact_id, message_type_id):
        return self.rows.get(_key(contact_id, None, message_type_id))

    def list_ids(self, contact_id):
        return set(self.memberships.get(contact_id, {}))

    # --- changing it

    def set_channel(self, contact_id, channel, *, receive: bool):
        change = consent_next(
            channel=channel, receive=receive, current=self.channel_status(contact_id, channel.pk)
        )
        if change is not None:
            status, again = change
            self._set(contact_id, channel, None, status, again=again)

    def set_message_type(self, contact_id, message_type, *, receive: bool):
        row = self.type_row(contact_id, message_type.pk)
        change = consent_next(
            message_type=message_type,
            receive=receive,
            current=row.status if row else None,
            current_at=row.updated_at if row else None,
        )
        if change is not None:
            status, again = change
            self._set(contact_id, None, message_type, status, again=again)

    def join(self, contact_id, list_id):
        if list_id in self.memberships.setdefault(contact_id, {}):
            return
        self.memberships[contact_id][list_id] = None
        self.joins.add((contact_id, list_id))

    def leave(self, contact_id, list_id):
        members = self.memberships.setdefault(contact_id, {})
        if list_id not in members:
            return
        pk = members.pop(list_id)
        if pk is None:
            self.joins.discard((contact_id, list_id))
        else:
            self.leaves.add(pk)

    def _set(self, contact_id, channel, message_type, status, *, again=False):
        key = _key(contact_id, channel and channel.pk, message_type and message_type.pk)
        row = self.rows.get(key)
        if row is None:
            row = Subscription(contact_id=contact_id, channel=channel, message_type=message_type)
            self.rows[key] = row
            self.original.setdefault(key, None)
        row.status = status
        row.source = self.source
        row.updated_at = self.now
        action = {
            Status.SUBSCRIBED: Action.SUBSCRIBED,
            Status.UNSUBSCRIBED: Action.UNSUBSCRIBED,
            Status.PENDING: Action.CONFIRMATION_REQUESTED,
        }[status]
        note = self.note
        if again:
            note = f"{note} The earlier confirmation link had expired."
        self.records.append(
            ConsentRecord(
                contact_id=contact_id,
                channel=channel,
                message_type=message_type,
                action=action,
                source=self.source,
                note=note.strip()[:255],
            )
        )
        self.touched.add(key)

    # --- writing it back

    def save(self) -> tuple[int, int]:
        changed = [(self.rows[key], self.original[key]) for key in sorted(self.touched, key=str)]
        new = [row for row, _ in changed if row.pk is None]
        old = [row for row, _ in changed if row.pk is not None]
        if new:
            Subscription.objects.bulk_create(new)
        if old:
            Subscription.objects.bulk_update(old, ["status", "source", "updated_at"])
        if self.records:
            ConsentRecord.objects.bulk_create(self.records)
        if self.joins:
            memberships_add(pairs=self.joins, source=ListMembership.Source.API)
        if self.leaves:
            ListMembership.objects.filter(pk__in=self.leaves).delete()
        for row, previous in changed:
            subscription_changed.send(
                sender=Subscription, subscription=row, previous_status=previous
            )
        if changed:
            subscriptions_changed.send(sender=Subscription, changes=changed)
        return len(self.records), len(self.joins) + len(self.leaves)


def _key(contact_id, channel_id, message_type_id):
    return (
        (contact_id, "channel", channel_id) if channel_id else (contact_id, "type", message_type_id)
    )


def contacts_for(identities, *, create: bool):
    """{position: Contact or the reason there is none} for (email, user_id)
    pairs, named as contact_find names them (the email when given), in at most
    five queries; unknown ones are created when `create` is true."""
    identities = {
        index: ((email or "").strip().lower() or None, (user_id or "").strip() or None)
        for index, (email, user_id) in identities.items()
    }
    emails = {email for email, _ in identities.values() if email}
    user_ids = {user_id for email, user_id in identities.values() if not email and user_id}

    def known():
        by_email = {c.email: c for c in Contact.objects.filter(email__in=emails)} if emails else {}
        by_user_id = (
            {c.user_id: c for c in Contact.objects.filter(user_id__in=user_ids)} if user_ids else {}
        )
        return by_email, by_user_id

    def find(email, user_id):
        return by_email.get(email) if email else by_user_id.get(user_id)

    # Identities are stored stripped: whitespace alone names nobody.
    nobody = {index for index, (email, user_id) in identities.items() if not email and not user_id}
    by_email, by_user_id = known()
    if create:
        missing = {}
        for index, (email, user_id) in identities.items():
            if index not in nobody and find(email, user_id) is None:
                missing.setdefault(email or user_id, Contact(email=email, user_id=user_id))
        if missing:
            # A userId already another contact's is a conflict: that row is not
            # created, and its update fails below.
            Contact.objects.bulk_create(list(missing.values()), ignore_conflicts=True)
            by_email, by_user_id = known()
    found = {}
    for index, (email, user_id) in identities.items():
        if index in nobody:
            found[index] = ("invalid", "A userId must not be blank.")
            continue
        contact = find(email, user_id)
        if contact is not None:
            found[index] = contact
        elif create:
            found[index] = ("conflict", "That userId already belongs to another user.")
        else:
            found[index] = ("unknown_user", f"No user with {'email' if email else 'userId'} "
                            f"{email or user_id}.")  # fmt: skip
    return found
