"""Write paths for users (contacts as the integrator API names them): upsert one
or many, move one to a new email address, list the fields in use.

Identity follows Iterable. A request names a user by email, by userId, or by
both. With both, email is the identity unless `preferUserId` is set:

- email and userId name the same contact, or one of them is unknown: that
  contact (or a new one) gets both;
- they name two different contacts: a conflict, nothing written;
- only the userId is known and its contact has another email: without
  preferUserId the userId belongs to another user (a conflict); with it the
  userId wins and the contact moves to the new email;
- only the email is known and its contact has another userId: without
  preferUserId the contact takes the new userId; with it a user with that
  userId would have to be created with an email already in use (a conflict).

Data is merged into Contact.attributes at the top level; an object replaces the
stored one unless mergeNestedObjects asks for a deep merge. A few of Iterable's
reserved profile fields are Contact columns, not attributes (USER_COLUMNS).
"""

import copy
import zoneinfo
from dataclasses import dataclass, field

from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from contacts.models import Contact
from contacts.phones import InvalidPhoneNumber, normalise_phone
from contacts.sql import update_from_values


class UserError(ValueError):
    """A user update that cannot be applied; `code` is Iterable's error code and
    `reason` one of the FailedUserUpdates categories (conflict, invalidData)."""

    def __init__(self, message, *, code="BadParams", reason="invalidData", params=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.params = params
        # Iterable answers an email/userId conflict with a 409, anything else with a 400.
        self.http_status = 409 if reason == "conflict" else 400


class UserNotFound(UserError):
    def __init__(self, message, *, code="BadParams"):
        super().__init__(message, code=code, reason="notFound")


# Iterable's reserved profile fields kept in Contact columns (what sending reads):
# dataFields.phoneNumber -> Contact.phone (E.164 via contacts.phones),
# dataFields.timeZone -> Contact.timezone (an IANA name),
# dataFields.locale -> Contact.locale (e.g. "en-US").
# They are not copied into attributes: the column is their one home. null clears one.
USER_COLUMNS = {"phoneNumber": "phone", "timeZone": "timezone", "locale": "locale"}
_COLUMN_LENGTHS = {"timezone": 64, "locale": 35}


@dataclass
class UserUpdate:
    """One user's update as a request states it (email already validated)."""

    email: str | None = None
    user_id: str | None = None
    data: dict = field(default_factory=dict)
    prefer_user_id: bool = False
    merge_nested: bool = False


@dataclass(frozen=True)
class UserUpdated:
    contact: Contact
    created: bool


@dataclass(frozen=True)
class UserUpdateFailure:
    index: int
    email: str | None
    user_id: str | None
    reason: str  # conflict, invalidData
    message: str
    code: str = "BadParams"
    params: dict | None = None


@dataclass(frozen=True)
class UsersUpdated:
    updated: list  # UserUpdated, in request order
    failures: list  # UserUpdateFailure, in request order


def _deep_merge(stored, new):
    merged = dict(stored)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _column_values(data: dict) -> dict:
    """Contact columns named in `data` (USER_COLUMNS), validated; raises UserError."""
    values = {}
    for name, column in USER_COLUMNS.items():
        if name not in data:
            continue
        value = data[name]
        if value is None:
            values[column] = ""
            continue
        if not isinstance(value, str):
            raise UserError(f"dataFields.{name} must be a string.")
        value = value.strip()
        if column == "phone" and value:
            try:
                value = normalise_phone(value)
            except InvalidPhoneNumber as exc:
                raise UserError(f"dataFields.{name}: {exc}") from None
        if column == "timezone" and value and value not in zoneinfo.available_timezones():
            raise UserError(f"dataFields.{name} must be an IANA time zone name.")
        if len(value) > _COLUMN_LENGTHS.get(column, 32):
            raise UserError(f"dataFields.{name} is too long.")
        values[column] = value
    return values


def _apply_data(contact: Contact, update: UserUpdate, columns: dict):
    attributes = {k: v for k, v in update.data.items() if k not in USER_COLUMNS}
    if update.merge_nested:
        contact.attributes = _deep_merge(contact.attributes or {}, attributes)
    else:
        contact.attributes = {**(contact.attributes or {}), **copy.deepcopy(attributes)}
    for column, value in columns.items():
        setattr(contact, column, value)


class _Batch:
    """The contacts a batch names, looked up once, changed in memory in request
    order (so a user named twice gets both updates), then written set-based."""

    def __init__(self, updates):
        emails = {u.email for u in updates if u.email}
        user_ids = {u.user_id for u in updates if u.user_id}
        self.by_email, self.by_user_id = {}, {}
        if emails or user_ids:
            found = Contact.objects.select_for_update().filter(
                Q(email__in=emails) | Q(user_id__in=user_ids)
            )
            for contact in found:
                self._index(contact)
        self.new, self.changed = [], {}
        # Identities a contact gives up in this batch: not handed on in the same
        # batch, since one UPDATE could then meet the old holder still holding it.
        self.released_emails, self.released_user_ids = set(), set()

    def _index(self, contact):
        if contact.email:
            self.by_email[contact.email] = contact
        if contact.user_id:
            self.by_user_id[contact.user_id] = contact

    def _set_identity(self, contact, *, email=None, user_id=None):
        if email and contact.email != email:
            if contact.email:
                self.by_email.pop(contact.email, None)
                self.released_emails.add(contact.email)
            contact.email = email
        if user_id and contact.user_id != user_id:
            if contact.user_id:
                self.by_user_id.pop(contact.user_id, None)
                self.released_user_ids.add(contact.user_id)
            contact.user_id = user_id
        self._index(contact)

    def resolve(self, update: UserUpdate) -> tuple[Contact, bool]:
        """The contact `update` names (new ones unsaved), its identity set; raises UserError."""
        email, user_id = update.email, update.user_id
        if email in self.released_emails or user_id in self.released_user_ids:
            raise UserError(
                "That email or userId was given up by another user earlier in this request.",
                reason="conflict",
            )
        by_email = self.by_email.get(email) if email else None
        by_user_id = self.by_user_id.get(user_id) if user_id else None
        if by_email and by_user_id and by_email is not by_user_id:
            raise UserError(
                "The email and the userId belong to two different users.",
                reason="conflict",
                params={"email": email, "userId": user_id},
            )
        contact = by_email or by_user_id
        if contact is None:
            contact = Contact(email=email, user_id=user_id, attributes={})
            self.new.append(contact)
            self._index(contact)
            return contact, True
        prefer = update.prefer_user_id
        if by_email and user_id and prefer and contact.user_id not in (None, user_id):
            raise UserError(
                "With preferUserId a new user would get that userId, but the email "
                "belongs to a user with another userId.",
                reason="conflict",
                params={"email": email},
            )
        if by_user_id and email and not prefer and contact.email not in (None, email):
            raise UserError(
                "That userId belongs to another user (with another email); send "
                "preferUserId to move that user to this email.",
                reason="conflict",
                params={"userId": user_id},
            )
        self._set_identity(contact, email=email, user_id=user_id)
        return contact, False

    def mark_changed(self, contact):
        if contact.pk is not None:
            self.changed[contact.pk] = contact

    def write(self):
        now = timezone.now()
        changed = list(self.changed.values())
        for contact in changed:
            contact.updated_at = now
        if changed:
            if connection.vendor == "postgresql":
                update_from_values(Contact, changed, _WRITTEN_FIELDS)
            else:
                Contact.objects.bulk_update(changed, _WRITTEN_FIELDS)
        if self.new:
            for contact in self.new:
                contact.created_at = contact.updated_at = now
            # PostgreSQL returns the new ids; a row another request created
            # meanwhile is an IntegrityError, and the caller runs the batch again.
            Contact.objects.bulk_create(self.new)


_WRITTEN_FIELDS = ["email", "user_id", "phone", "timezone", "locale", "attributes", "updated_at"]


# A batch that loses a race (another request created or renamed one of its
# users between the lookup and the write) is run again: the second lookup sees
# what the other request wrote.
_ATTEMPTS = 3


def users_update(*, updates: list[UserUpdate]) -> UsersUpdated:
    """Upsert many users in a handful of queries, whatever their number.

    Each update is applied in request order; one that cannot be applied (an
    identity conflict, a bad reserved field) is reported by its index and
    the others go ahead. Existing contacts are locked while the batch runs,
    so concurrent updates of one user merge instead of losing each other's
    data.
    """
    updates = [
        UserUpdate(
            email=(u.email or "").strip().lower() or None,
            user_id=u.user_id or None,
            data=u.data or {},
            prefer_user_id=u.prefer_user_id,
            merge_nested=u.merge_nested,
        )
        for u in updates
    ]
    for attempt in range(_ATTEMPTS):
        try:
            with transaction.atomic():
                return _users_update_once(updates)
        except IntegrityError:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _users_update_once(updates):
    batch = _Batch(updates)
    updated, failures = [], []
    for index, update in enumerate(updates):
        try:
            columns = _column_values(update.data)
            contact, created = batch.resolve(update)
        except UserError as exc:
            failures.append(
                UserUpdateFailure(
                    index, update.email, update.user_id, exc.reason, str(exc), exc.code, exc.params
                )
            )
            continue
        _apply_data(contact, update, columns)
        batch.mark_changed(contact)
        updated.append(UserUpdated(contact=contact, created=created))
    try:
        with transaction.atomic():
            batch.write()
    except DataError as exc:
        # Nothing the parser lets through should get here; if PostgreSQL still
        # refuses a value, the request is refused whole rather than half-written.
        raise UserError("The data cannot be stored.") from exc
    return UsersUpdated(updated=updated, failures=failures)


def user_update(*, update: UserUpdate) -> UserUpdated:
    """Upsert one user (see the module's docstring); raises UserError, writing nothing."""
    result = users_update(updates=[update])
    if result.failures:
        failure = result.failures[0]
        raise UserError(
            failure.message, code=failure.code, reason=failure.reason, params=failure.params
        )
    return result.updated[0]


def user_email_update(
    *, new_email: str, current_email: str | None = None, current_user_id: str | None = None
) -> Contact:
    """Give a user a new email address; the contact (events, messages, consent
    history) stays the same. currentEmail wins over currentUserId, as in
    Iterable. Raises UserNotFound, or UserError (EmailAlreadyExists) when the
    new address is another user's."""
    new_email = new_email.strip().lower()
    current_email = (current_email or "").strip().lower() or None
    lookup = {"email": current_email} if current_email else {"user_id": current_user_id}
    with transaction.atomic():
        contact = Contact.objects.select_for_update().filter(**lookup).first()
        if contact is None:
            named = "currentEmail" if current_email else "currentUserId"
            raise UserNotFound(
                f"No user has that {named}.",
                code="UnknownEmailError" if current_email else "UnknownUserIdError",
            )
        if contact.email == new_email:
            return contact
        taken = UserError(
            "Another user already has that newEmail.", code="EmailAlreadyExists", reason="conflict"
        )
        if Contact.objects.filter(email=new_email).exists():
            raise taken
        contact.email = new_email
        try:
            with transaction.atomic():
                contact.save(update_fields=["email", "updated_at"])
        except IntegrityError:
            raise taken from None
    return contact


# Iterable's names for the profile fields every user has, and their types.
PROFILE_FIELDS = {
    "email": "string",
    "userId": "string",
    "phoneNumber": "string",
    "timeZone": "string",
    "locale": "string",
    "signupDate": "date",
    "profileUpdatedAt": "date",
}

# getFields reads the attribute keys of the most recently created contacts
# only: scanning every contact's attributes on each call would read the whole
# table. A key that only contacts older than these carry is not listed.
FIELDS_SAMPLE = 10_000


def _field_type(value) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return None  # null says nothing of a field's type


def user_fields(*, sample: int = FIELDS_SAMPLE) -> dict[str, str]:
    """The profile fields and the attribute keys in use, each with its type
    (string, long, double, boolean, object, array; the most common one where
    contacts disagree)."""
    counts: dict[str, dict[str, int]] = {}
    if connection.vendor == "postgresql":
        # jsonb_each over a LIMITed subquery: the sample is read by the primary
        # key's index, and only (key, type) pairs come back, counted.
        table = connection.ops.quote_name(Contact._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT f.key, CASE WHEN jsonb_typeof(f.value) = 'number' THEN "
                "CASE WHEN f.value::text ~ '^-?[0-9]+$' THEN 'long' ELSE 'double' END "
                "ELSE jsonb_typeof(f.value) END AS type, count(*) "
                f"FROM (SELECT attributes FROM {table} ORDER BY id DESC LIMIT %s) AS c, "
                "jsonb_each(CASE WHEN jsonb_typeof(c.attributes) = 'object' "
                "THEN c.attributes ELSE '{}'::jsonb END) AS f "
                "WHERE jsonb_typeof(f.value) <> 'null' GROUP BY 1, 2",
                [sample],
            )
            for key, kind, count in cursor.fetchall():
                counts.setdefault(key, {})[kind] = count
    else:
        for attributes in Contact.objects.order_by("-id").values_list("attributes", flat=True)[
            :sample
        ]:
            for key, value in (attributes if isinstance(attributes, dict) else {}).items():
                kind = _field_type(value)
                if kind:
                    by_kind = counts.setdefault(key, {})
                    by_kind[kind] = by_kind.get(kind, 0) + 1
    fields = {
        key: max(sorted(kinds), key=lambda kind: kinds[kind]) for key, kinds in counts.items()
    }
    return {**fields, **PROFILE_FIELDS}
