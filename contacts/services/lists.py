"""Write paths (and the streamed reads) of static lists and their members."""

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from contacts.models import Contact, ContactList, ListMembership
from contacts.services.events import contacts_get_or_create_many
from contacts.signals import list_members_joined
from contacts.sql import array_literal

logger = logging.getLogger(__name__)


class ListError(ValueError):
    pass


class ListNotFound(ListError):
    def __init__(self, list_id):
        super().__init__(f"No list with id {list_id}.")


class ListNameTaken(ListError):
    pass


def list_create(*, name: str, description: str = "") -> ContactList:
    """Create a static list; its name must be new."""
    try:
        with transaction.atomic():
            return ContactList.objects.create(name=name, description=description)
    except IntegrityError:
        raise ListNameTaken(f"A list named {name!r} already exists.") from None


def list_get(*, list_id: int) -> ContactList:
    contact_list = ContactList.objects.filter(pk=list_id).first()
    if contact_list is None:
        raise ListNotFound(list_id)
    return contact_list


def list_delete(*, list_id: int) -> None:
    """Delete a list and its memberships (the contacts stay)."""
    deleted, _ = ContactList.objects.filter(pk=list_id).delete()
    if not deleted:
        raise ListNotFound(list_id)


def list_member_identities(
    *, contact_list: ContactList, prefer_user_id: bool = False, chunk: int = 5000
) -> Iterator[str]:
    """Each member's email (or user id, if preferred or the only one), in
    the order they joined, read in chunks so a list of millions streams."""
    last = 0
    while True:
        rows = list(
            ListMembership.objects.filter(contact_list=contact_list, pk__gt=last)
            .order_by("pk")
            .values_list("pk", "contact__email", "contact__user_id")[:chunk]
        )
        for _, email, user_id in rows:
            yield (user_id or email) if prefer_user_id else (email or user_id)
        if len(rows) < chunk:
            return
        last = rows[-1][0]


def list_member_sample(
    *, contact_list: ContactList, size: int, prefer_user_id: bool = False
) -> list[str]:
    """Up to `size` members of the list, picked at random."""
    rows = (
        ListMembership.objects.filter(contact_list=contact_list)
        .order_by("?")
        .values_list("contact__email", "contact__user_id")[:size]
    )
    return [(u or e) if prefer_user_id else (e or u) for e, u in rows]


@dataclass(frozen=True)
class Subscriber:
    """One person a bulk list request names, with the data to merge into its profile."""

    email: str | None = None
    user_id: str | None = None
    data: dict | None = None
    merge_nested: bool = False


@dataclass(frozen=True)
class SubscriberFailure:
    """A subscriber of a bulk request that was not handled, by its position (from 0)."""

    index: int
    reason: str  # "notFound" or "conflict"
    msg: str


@dataclass(frozen=True)
class ListChange:
    """What a bulk subscribe or unsubscribe did."""

    # Positions of the subscribers handled, and the contact each names.
    contact_ids: dict
    failures: list  # SubscriberFailure, in request order


def _merge(attributes: dict, data: dict, nested: bool) -> dict:
    merged = dict(attributes)
    for key, value in data.items():
        if nested and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _resolve(subscribers, *, create):
    contacts = contacts_get_or_create_many(
        identities=[(s.email, s.user_id) for s in subscribers], create=create
    )
    contact_ids, failures = {}, []
    for index, subscriber in enumerate(subscribers):
        contact_id = contacts.get(subscriber.email, subscriber.user_id)
        if contact_id is not None:
            contact_ids[index] = contact_id
        elif create:
            failures.append(
                SubscriberFailure(index, "conflict", "That userId belongs to another contact.")
            )
        else:
            failures.append(SubscriberFailure(index, "notFound", "No such user."))
    return contact_ids, failures


def list_subscribe(
    *, list_id: int, subscribers: list[Subscriber], update_existing_only: bool = False
) -> ListChange:
    """Add the subscribers to the list, creating unknown contacts unless
    `update_existing_only`, and merge each one's data into its profile.

    Set-based whatever the size: contacts are resolved and created in three
    queries, profiles updated in one, memberships inserted in one (a member
    already in the list stays as it was).
    """
    with transaction.atomic():
        contact_list = list_get(list_id=list_id)
        contact_ids, failures = _resolve(subscribers, create=not update_existing_only)
        with_data = {index: subscribers[index] for index in contact_ids if subscribers[index].data}
        if with_data:
            profiles = Contact.objects.select_for_update().in_bulk(
                {contact_ids[index] for index in with_data}
            )
            now = timezone.now()
            for index, subscriber in with_data.items():
                contact = profiles[contact_ids[index]]
                contact.attributes = _merge(
                    contact.attributes, subscriber.data, subscriber.merge_nested
                )
                contact.updated_at = now
            Contact.objects.bulk_update(profiles.values(), ["attributes", "updated_at"])
        memberships_add(
            pairs={(contact_id, contact_list.pk) for contact_id in contact_ids.values()},
            source=ListMembership.Source.API,
        )
    return ListChange(contact_ids=contact_ids, failures=failures)


def memberships_add(*, pairs, source: str) -> int:
    """Make each (contact id, list id) pair a membership unless it is one,
    and tell listeners who joined which list (list_members_joined: journeys
    that start on joining it). Two queries and a signal per list, however
    many pairs. Returns how many joined."""
    pairs = set(pairs)
    if not pairs:
        return 0
    existing = set(
        ListMembership.objects.filter(
            contact_id__in={contact_id for contact_id, _ in pairs},
            contact_list_id__in={list_id for _, list_id in pairs},
        ).values_list("contact_id", "contact_list_id")
    )
    new = sorted(pairs - existing)
    ListMembership.objects.bulk_create(
        [
            ListMembership(contact_id=contact_id, contact_list_id=list_id, source=source)
            for contact_id, list_id in new
        ],
        ignore_conflicts=True,
    )
    joined = defaultdict(list)
    for contact_id, list_id in new:
        joined[list_id].append(contact_id)
    for list_id, contact_ids in joined.items():
        memberships_joined(contact_list_id=list_id, contact_ids=contact_ids)
    return len(new)


def members_add(*, contact_list_id: int, contact_ids, source: str) -> int:
    """Make each of `contact_ids` a member of the list unless it is one, and
    tell listeners who joined (list_members_joined). One statement however
    many contacts (an INSERT … SELECT of an array, the existing members left
    alone) and one signal. Returns how many joined."""
    contact_ids = sorted(set(contact_ids))
    if not contact_ids:
        return 0
    table = ListMembership._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} (contact_list_id, contact_id, joined_at, source) "
                "SELECT %s, id, %s, %s FROM unnest(%s::bigint[]) AS id "
                "ON CONFLICT (contact_list_id, contact_id) DO NOTHING RETURNING contact_id",
                [contact_list_id, timezone.now(), source, array_literal(contact_ids)],
            )
            joined = [row[0] for row in cursor.fetchall()]
        else:
            return memberships_add(
                pairs={(contact_id, contact_list_id) for contact_id in contact_ids}, source=source
            )
    if joined:
        memberships_joined(contact_list_id=contact_list_id, contact_ids=sorted(joined))
    return len(joined)


def memberships_joined(*, contact_list_id: int, contact_ids) -> None:
    """Tell listeners that these contacts just joined the list (for paths that
    store memberships themselves, such as the admin's form).

    What listeners do is a consequence of the join, not part of it: if one
    fails, its writes roll back alone and the join stands (logged)."""
    try:
        with transaction.atomic():
            list_members_joined.send(
                sender=ListMembership,
                contact_list_id=contact_list_id,
                contact_ids=list(contact_ids),
            )
    except Exception:
        logger.exception("listeners failed on contacts joining list %s", contact_list_id)


def list_unsubscribe(*, list_id: int, subscribers: list[Subscriber]) -> ListChange:
    """Remove the subscribers from the list in one statement; an unknown
    user fails alone, and one who is not a member is left as is."""
    with transaction.atomic():
        contact_list = list_get(list_id=list_id)
        contact_ids, failures = _resolve(subscribers, create=False)
        ListMembership.objects.filter(
            contact_list=contact_list, contact_id__in=set(contact_ids.values())
        ).delete()
    return ListChange(contact_ids=contact_ids, failures=failures)
