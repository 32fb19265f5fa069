"""The sending pipeline: render → check → deliver → record, one Message row per send.

`messages_send` takes a batch of sends, writes their rows together, and then,
message by message:

1. in one transaction: write the previous message's result, lock the row,
   re-read the contact and its consent, ask whoever requested the send
   whether it still stands (messaging.signals.message_sending), check, render,
   and mark the row `sending` — then commit;
2. outside any transaction, hand the message to its medium's backend over
   a session kept open for the batch (one SMTP connection, say).

Committing `sending` before the hand-off is the at-most-once guard: a worker
that dies mid-delivery leaves the row `sending`, and the next run records
"outcome unknown" instead of sending again. Consent is thus read at the
instant of sending, not when the send was decided: an unsubscribe takes
effect for messages already queued. Nothing here branches on the medium;
what differs lives in the backend (messaging.backends).
"""

import dataclasses
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from contacts.models import Contact, ForgottenAddress
from contacts.sql import typed_values
from messaging.backends import (
    AddressRejected,
    InvalidAddress,
    PermanentDeliveryError,
    TransientDeliveryError,
    get_backend,
)
from messaging.context import message_context, message_links, placeholder_links
from messaging.models import Message, SentContent, Suppression, Template
from messaging.rendering import RenderError
from messaging.signals import Abandon, Defer, Skip, message_sending
from subscriptions.consent import consent_skip_reason
from subscriptions.models import Channel, MessageType, Subscription

logger = logging.getLogger(__name__)

Status = Message.Status
SkipReason = Message.SkipReason


class SendingInTransaction(RuntimeError):
    """message_send was called inside a transaction, where `sending` could not commit first."""


@dataclass(frozen=True)
class SendRequest:
    """One send to ask for. `context` is the template data besides the
    contact's own ({"event": {...}}); `hold` is handed to the
    message_sending receivers (a journey passes its lease). A future
    `send_at` leaves a new message queued for messaging's retry pass to send
    then, consent checked at that instant."""

    contact: Any
    template: Template
    idempotency_key: str
    origin: str
    context: dict = field(default_factory=dict)
    origin_id: int | None = None
    # The step that asked, within its origin (a journey's send step).
    origin_step_id: int | None = None
    hold: Any = None
    send_at: datetime | None = None


@dataclass(frozen=True)
class SendResult:
    message: Message
    detail: str = ""
    # Set when delivery failed in a way that may recover: messaging's retry
    # pass tries again then, with the same row.
    retry_at: datetime | None = None
    # Not sent now, and not decided: ask again later (the journey is paused).
    deferred: bool = False
    # The requester no longer holds what it asked for (a journey's lease): nothing was done.
    abandoned: bool = False


@dataclass
class _Item:
    """A message on its way through one attempt."""

    index: int
    row: Message
    contact: Any
    template: Template
    hold: Any = None
    lease_token: uuid.UUID | None = None
    test_address: str = ""


def _assert_outside_transaction():
    if connection.in_atomic_block:
        raise SendingInTransaction(
            "Messages are sent outside transactions: the row is committed as `sending` "
            "before the hand-off, so a crash can never lead to a second delivery."
        )


def message_send(
    *,
    contact,
    template: Template,
    idempotency_key: str,
    origin: str,
    context: dict | None = None,
    origin_id: int | None = None,
    hold=None,
    send_at: datetime | None = None,
) -> SendResult:
    """Send `template` to `contact` at most once for `idempotency_key`; see messages_send."""
    (result,) = messages_send(
        [
            SendRequest(
                contact=contact,
                template=template,
                idempotency_key=idempotency_key,
                origin=origin,
                context=context or {},
                origin_id=origin_id,
                hold=hold,
                send_at=send_at,
            )
        ]
    )
    return result


def messages_send(requests: list[SendRequest]) -> list[SendResult]:
    """Send each request at most once for its idempotency key; results in request order.

    Must run outside a transaction (it commits before each hand-off). A key
    seen before returns its recorded outcome; a key whose message is waiting
    for messaging's retry pass returns that (`retry_at`) without sending.
    """
    _assert_outside_transaction()
    if not requests:
        return []
    now = timezone.now()
    rows = _rows_for(requests)
    results: list[SendResult | None] = [None] * len(requests)
    items = []
    seen = set()
    for index, request in enumerate(requests):
        row = rows[request.idempotency_key]
        row.contact = request.contact
        row.template = request.template
        if row.status == Status.SENDING:
            results[index] = _interrupted(row, now)
        elif row.status in Message.FINAL or request.idempotency_key in seen:
            results[index] = SendResult(row, detail=f"already {row.status}")
        elif row.next_attempt_at is not None:
            detail = "will retry" if row.attempts else "scheduled"
            results[index] = SendResult(row, retry_at=row.next_attempt_at, detail=detail)
        else:
            items.append(_Item(index, row, request.contact, request.template, request.hold))
        seen.add(request.idempotency_key)
    for item, result in _attempt(items):
        results[item.index] = result
    return results


def message_send_test(*, template: Template, to_address: str, contact=None, event=None):
    """Send `template` to `to_address` as a test, through the real backend.

    No consent check (staff send it to themselves), no metric counts it, and
    its links act on no one. Rendered for `contact` when given (a saved
    contact's data, or an unsaved sample), with `event` as the trigger data.
    """
    _assert_outside_transaction()
    message_type = template.message_type
    backend = get_backend(message_type.channel.medium)
    if not backend.sends_to_address:
        raise ValueError(f"Test sends go to an address; {backend.medium} messages have none.")
    if contact is None:
        contact = Contact(email=to_address)
    row = Message.objects.create(
        contact=contact if contact.pk else None,
        template=template,
        message_type=message_type,
        channel_id=message_type.channel_id,
        medium=message_type.channel.medium,
        origin=Message.Origin.TEST,
        is_test=True,
        idempotency_key=f"test:{uuid.uuid4().hex}",
        context={"event": dict(event or {})},
        to_address=to_address,
    )
    row.template = template
    item = _Item(0, row, contact, template, test_address=to_address)
    ((_, result),) = _attempt([item])
    return result


def message_render_again(*, message: Message):
    """A sent message rendered again for its contact, as they would see it now:
    the same template and trigger data, the contact's current attributes, its
    real links without tracking. Raises RenderError."""
    backend = get_backend(message.medium)
    message_type = message.template.message_type
    links = dataclasses.replace(
        message_links(contact=message.contact, message_type=message_type, message_id=message.pk),
        track_opens=False,
        track_clicks=False,
    )
    context = message_context(
        contact=message.contact,
        event=message.context.get("event"),
        data=message.context.get("data"),
        links=links,
    )
    return backend.preview(message.template, context)


# --- rows -----------------------------------------------------------------------


def _rows_for(requests) -> dict:
    """The Message row of every request's key, inserting the missing ones together."""
    keys = {request.idempotency_key for request in requests}
    rows = {m.idempotency_key: m for m in Message.objects.filter(idempotency_key__in=keys)}
    missing = {}
    for request in requests:
        key = request.idempotency_key
        if key in rows or key in missing:
            continue
        message_type = request.template.message_type
        missing[key] = Message(
            idempotency_key=key,
            contact=request.contact,
            template=request.template,
            message_type=message_type,
            channel_id=message_type.channel_id,
            medium=message_type.channel.medium,
            origin=request.origin,
            origin_id=request.origin_id,
            origin_step_id=request.origin_step_id,
            context=request.context,
            next_attempt_at=request.send_at,
        )
    if missing:
        # A concurrent run may insert the same keys: theirs stand, ours are dropped.
        Message.objects.bulk_create(missing.values(), ignore_conflicts=True)
        rows.update(
            {m.idempotency_key: m for m in Message.objects.filter(idempotency_key__in=missing)}
        )
    return rows


def _interrupted(row, now) -> SendResult:
    # A previous attempt died between handing the message over and recording
    # the result. Sending again could deliver it twice. Only if it is still
    # `sending`: the row was read without a lock, and a worker that was slow
    # rather than dead may have recorded the outcome since.
    fields = {
        "status": Status.FAILED,
        "failed_at": now,
        "locked_until": None,
        "lease_token": None,
        "error": Message.INTERRUPTED_ERROR,
        "updated_at": timezone.now(),
    }
    if not _update_message(row.pk, fields, status=Status.SENDING):
        stored = Message.objects.get(pk=row.pk)
        return SendResult(stored, detail=f"already {stored.status}")
    for name, value in fields.items():
        setattr(row, name, value)
    return SendResult(row, detail="interrupted")


def _write_now(row, **fields):
    fields["updated_at"] = timezone.now()
    _update_message(row.pk, fields)
    for name, value in fields.items():
        setattr(row, name, value)


def _update_message(pk, fields, *, status=None) -> bool:
    """UPDATE one message row (only while its status is `status`, if given);
    whether it did. Written as SQL: it runs twice per message sent, and
    building the queryset costs more than running it."""
    quote = connection.ops.quote_name
    assignments, params = [], []
    for name, value in fields.items():
        field = Message._meta.get_field(name)
        assignments.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    where, where_params = "id = %s", [pk]
    if status is not None:
        where, where_params = f"{where} AND status = %s", [pk, status]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Message._meta.db_table)} SET {', '.join(assignments)} WHERE {where}",
            [*params, *where_params],
        )
        return cursor.rowcount == 1


# --- attempts ---------------------------------------------------------------------


class _Results:
    """Outcomes of delivered messages, written together.

    Each message's `sending` mark commits before its hand-off; the outcomes
    of the handed-over messages are written in one statement every
    `CHUNK` messages, inside the transaction of the next message's mark (and
    at the batch's end). Should the worker die with outcomes unwritten, those
    messages stay `sending` and are recorded as "outcome unknown", never sent
    again. The same statement keeps what each sent message carried
    (SentContent), compressed on the worker before it is added here.
    """

    CHUNK = 25
    FIELDS = (
        "status", "sent_at", "failed_at", "provider_message_id", "next_attempt_at", "error",
        "updated_at",
    )  # fmt: skip

    def __init__(self):
        self.pending = []
        # Message id -> SentContent.data, for the sent ones whose content is kept.
        self.contents = {}

    def add(self, row, *, content: bytes | None = None, **fields):
        fields["updated_at"] = timezone.now()
        for name, value in fields.items():
            setattr(row, name, value)
        self.pending.append(row)
        if content is not None:
            self.contents[row.pk] = content

    def write(self, *, force=False):
        if not self.pending or (len(self.pending) < self.CHUNK and not force):
            return
        pending, self.pending = self.pending, []
        contents, self.contents = self.contents, {}
        if connection.vendor == "postgresql":
            _write_outcomes(pending, self.FIELDS, contents)
            return
        for row in pending:
            _update_message(row.pk, {name: getattr(row, name) for name in self.FIELDS})
        SentContent.objects.bulk_create(
            [
                SentContent(message_id=row.pk, stored_at=row.sent_at, data=contents[row.pk])
                for row in pending
                if row.pk in contents
            ],
            ignore_conflicts=True,
        )

    def flush(self):
        if self.pending:
            with transaction.atomic():
                self.write(force=True)


def _write_outcomes(rows, field_names, contents):
    """One statement for a chunk of outcomes: UPDATE … FROM (VALUES …) of the
    messages, and, in the same VALUES, INSERT of the content kept of the sent
    ones (a data-modifying WITH runs whether or not the INSERT reads it)."""
    quote = connection.ops.quote_name
    values, params, columns = typed_values(
        Message, rows, field_names, extra=[("bytea", lambda row: contents.get(row.pk))]
    )
    assignments = ", ".join(f"{column} = v.{column}" for column in columns)
    sent_at = quote(Message._meta.get_field("sent_at").column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH v(id, {', '.join(columns)}, content) AS {values}, "
            f"outcomes AS (UPDATE {quote(Message._meta.db_table)} AS t SET {assignments} "
            "FROM v WHERE t.id = v.id) "
            f"INSERT INTO {quote(SentContent._meta.db_table)} (message_id, stored_at, data) "
            f"SELECT id, {sent_at}, content FROM v WHERE content IS NOT NULL "
            "ON CONFLICT (message_id) DO NOTHING",
            params,
        )


def _attempt(items):
    """Try to send each item's message; yields (item, SendResult)."""
    by_medium: dict[str, list[_Item]] = {}
    for item in items:
        by_medium.setdefault(item.row.medium, []).append(item)
    for medium, group in by_medium.items():
        backend = get_backend(medium)
        results = _Results()
        try:
            with backend.session() as session:
                for item in group:
                    yield item, _attempt_one(item, backend, session, results)
        finally:
            results.flush()


def _attempt_one(item, backend, session, results) -> SendResult:
    row = item.row
    with transaction.atomic():
        results.write()
        verdict = _mark_sending(item, backend)
    if isinstance(verdict, SendResult):
        return verdict
    rendered = verdict
    try:
        provider_id = session.deliver(row, rendered)
    except TransientDeliveryError as exc:
        if row.attempts >= settings.WAYMARK_SENDING["MAX_ATTEMPTS"]:
            results.add(row, status=Status.FAILED, failed_at=timezone.now(), error=str(exc))
            return SendResult(row, detail="failed after retries")
        retry_at = timezone.now() + _retry_delay(row.attempts)
        results.add(row, status=Status.QUEUED, next_attempt_at=retry_at, error=str(exc))
        logger.warning("message %s: %s; retrying at %s", row.pk, exc, retry_at)
        return SendResult(row, retry_at=retry_at, detail="will retry")
    except AddressRejected as exc:
        results.add(row, status=Status.FAILED, failed_at=timezone.now(), error=str(exc))
        return SendResult(row, detail="address rejected")
    except PermanentDeliveryError as exc:
        results.add(row, status=Status.FAILED, failed_at=timezone.now(), error=str(exc))
        return SendResult(row, detail="delivery refused")
    except Exception as exc:
        # Anything else (a header the mail library refuses, a backend bug)
        # leaves the outcome unknown: record it, never leave the row `sending`.
        logger.exception("message %s: delivery raised", row.pk)
        results.add(
            row,
            status=Status.FAILED,
            failed_at=timezone.now(),
            error=f"Delivery failed: {type(exc).__name__}: {exc}",
        )
        return SendResult(row, detail="delivery failed")
    results.add(
        row,
        content=_content_to_keep(backend, rendered),
        status=Status.SENT,
        sent_at=timezone.now(),
        provider_message_id=(provider_id or "")[:255],
        next_attempt_at=None,
        error="",
    )
    return SendResult(row, detail="sent")


def _content_to_keep(backend, rendered) -> bytes | None:
    """What a delivered message carried, packed for SentContent; None when
    WAYMARK_SENT_CONTENT_DAYS is 0 (nothing is kept)."""
    if settings.WAYMARK_SENT_CONTENT_DAYS <= 0:
        return None
    try:
        return SentContent.pack(backend.content_to_keep(rendered))
    except Exception:
        # The message went out: failing to keep a copy must not change its outcome.
        logger.exception("could not keep the content of a sent message")
        return None


def _retry_delay(attempt):
    return settings.WAYMARK_SENDING["RETRY_BASE"] * (4 ** max(0, attempt - 1))


def _mark_sending(item, backend):
    """Inside the transaction: the final checks, the rendering and the `sending`
    mark. Returns what to deliver, or the SendResult that ends the attempt."""
    row = item.row
    now = timezone.now()
    message_type = item.template.message_type
    facts = _locked_facts(item, message_type, backend, now)
    if facts is None:  # deleted with its contact meanwhile
        return SendResult(row, detail="contact deleted", abandoned=True)
    if item.lease_token is not None and facts.lease_token != item.lease_token:
        return SendResult(row, detail="claimed by another retry pass", abandoned=True)
    if facts.status != Status.QUEUED:
        stored = Message.objects.get(pk=row.pk)
        return SendResult(stored, detail=f"already {stored.status}")
    contact = item.contact if row.is_test else facts.contact

    deferral = None
    if not row.is_test:
        answers = message_sending.send(sender=Message, message=row, hold=item.hold, now=now)
        for _, verdict in answers:
            if isinstance(verdict, Abandon):
                return SendResult(row, detail=verdict.detail or "abandoned", abandoned=True)
            if isinstance(verdict, Skip):
                return _skip(row, verdict.reason, verdict.detail)
            if isinstance(verdict, Defer):
                deferral = verdict

    if row.is_test:
        address = item.test_address
    else:
        try:
            address = backend.address_for(contact)
        except InvalidAddress as exc:
            return _skip(row, SkipReason.INVALID_ADDRESS, str(exc))
        except Exception as exc:
            logger.exception("message %s: finding the address raised", row.pk)
            return _fail(row, now, f"Could not read the address: {type(exc).__name__}: {exc}")
        reason = _skip_reason(facts, contact, address, message_type)
        if reason:
            return _skip(row, reason)

    if deferral is not None:
        # Only once nothing rules the send out for good: a contact who may
        # never receive it is told so now, not when the journey resumes.
        if deferral.until is not None:
            _write_now(row, next_attempt_at=deferral.until, locked_until=None)
        return SendResult(row, detail=deferral.detail or "deferred", deferred=True)

    if not row.is_test and not facts.transactional:
        quiet_until = quiet_hours_end(contact, now)
        if quiet_until is not None:
            # Not dropped: messaging's retry pass sends it when the night is over.
            _write_now(row, next_attempt_at=quiet_until, locked_until=None)
            return SendResult(row, retry_at=quiet_until, detail="quiet hours")

    if row.is_test:
        links = placeholder_links()
    else:
        links = message_links(contact=contact, message_type=message_type, message_id=row.pk)
    context = message_context(
        contact=contact, event=row.context.get("event"), data=row.context.get("data"), links=links
    )
    try:
        rendered = backend.render(item.template, context, links=links)
    except RenderError as exc:
        return _fail(row, now, str(exc))
    except Exception as exc:
        logger.exception("message %s: rendering raised", row.pk)
        return _fail(row, now, f"Could not build the message: {type(exc).__name__}: {exc}")
    subject = rendered.summary
    if row.is_test:
        subject = f"[Test] {subject}"[:500]
        rendered = dataclasses.replace(rendered, subject=f"[Test] {rendered.subject}")
    _write_now(
        row,
        status=Status.SENDING,
        attempts=facts.attempts + 1,  # the row is locked: no one else counts meanwhile
        to_address=address[:254],
        subject=subject,
        links=list(rendered.links),
        next_attempt_at=None,
        locked_until=None,
        lease_token=None,
    )
    return rendered


def _skip(row, reason, detail="") -> SendResult:
    _write_now(row, status=Status.SKIPPED, skip_reason=reason, error=detail, locked_until=None)
    return SendResult(row, detail=f"skipped: {reason}")


def _fail(row, now, error) -> SendResult:
    _write_now(row, status=Status.FAILED, failed_at=now, error=error, locked_until=None)
    return SendResult(row, detail="render failed")


def quiet_hours_end(contact, now) -> datetime | None:
    """When the quiet hours (WAYMARK_QUIET_HOURS, in the contact's time zone) that
    `now` falls in end, or None when `now` is not in them."""
    window = settings.WAYMARK_SENDING["QUIET_HOURS"]
    if window is None:
        return None
    start, end = window
    local = now.astimezone(contact.zone)
    at = local.time()
    # A window may run across midnight, e.g. 21:00-08:00.
    inside = (start <= at < end) if start <= end else (at >= start or at < end)
    if not inside:
        return None
    ends = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if ends <= local:
        ends += timedelta(days=1)
    return ends


# --- the final check ----------------------------------------------------------------


def _local_day_start(contact, now, period=MessageType.Period.DAY):
    local = now.astimezone(contact.zone)
    local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == MessageType.Period.WEEK:
        local -= timedelta(days=local.weekday())
    return local


@dataclass
class _Facts:
    """What the final check reads, fresh, in the transaction that marks `sending`."""

    status: str
    lease_token: uuid.UUID | None
    attempts: int
    contact: Contact | None
    # The message type's policy and its channel's kind as stored now: staff
    # may have changed them since the sender loaded the template.
    policy: str = ""
    transactional: bool = False
    channel_status: str | None = None
    type_status: str | None = None
    suppressed: bool = False
    type_sent: int = 0
    channel_sent: int | None = None


# The contact fields backends and checks read.
_CONTACT_FIELDS = (
    "id", "email", "user_id", "phone", "timezone", "locale", "attributes", "blocklisted",
)  # fmt: skip


def _locked_facts(item, message_type, backend, now) -> _Facts | None:
    """The message row, locked, with everything the checks need read fresh in one query:
    the contact, its consent statuses, whether its address is suppressed, and
    its recent sends for the frequency caps.

    Written as SQL rather than through the ORM: this runs once per message
    sent, and building the equivalent queryset costs more than running it.
    """
    m = Message._meta.db_table
    c = Contact._meta.db_table
    s = Subscription._meta.db_table
    columns = ["m.status", "m.lease_token", "m.attempts"] + [f"c.{f}" for f in _CONTACT_FIELDS]
    params: list = []
    if not item.row.is_test:
        columns += [
            f"(SELECT policy FROM {MessageType._meta.db_table} WHERE id = m.message_type_id)",
            f"(SELECT kind FROM {Channel._meta.db_table} WHERE id = m.channel_id)",
            f"(SELECT status FROM {s} WHERE contact_id = c.id AND channel_id = %s)",
            f"(SELECT status FROM {s} WHERE contact_id = c.id AND message_type_id = %s)",
        ]
        params += [message_type.channel_id, message_type.pk]
        suppressions = Suppression._meta.db_table
        columns.append(
            f"EXISTS (SELECT 1 FROM {suppressions} WHERE address = c.email)"
            if backend.uses_suppressions
            else "false"
        )
        # Whatever the medium: the contact's email or phone was forgotten.
        forgotten = ForgottenAddress._meta.db_table
        email = ForgottenAddress.digest_sql("c.email", connection)
        phone = ForgottenAddress.digest_sql("NULLIF(c.phone, '')", connection)
        columns.append(f"EXISTS (SELECT 1 FROM {forgotten} WHERE digest IN ({email}, {phone}))")
        sent = (
            f"(SELECT count(*) FROM {m} AS sent WHERE sent.contact_id = c.id AND "
            "NOT sent.is_test AND sent.id <> m.id AND sent.sent_at >= %s AND sent.{} = %s)"
        )
        if message_type.frequency_limit:
            columns.append(sent.format("message_type_id"))
            since = _local_day_start(item.contact, now, message_type.frequency_period)
            params += [since, message_type.pk]
        else:
            columns.append("0")
        if settings.WAYMARK_SENDING["DAILY_CAP"]:
            # Counted whatever the kind the caller saw: the kind is read fresh above.
            columns.append(sent.format("channel_id"))
            params += [_local_day_start(item.contact, now), message_type.channel_id]
        else:
            columns.append("NULL")
    lock = " FOR UPDATE OF m" if connection.features.has_select_for_update_of else ""
    sql = (
        f"SELECT {', '.join(columns)} FROM {m} AS m LEFT JOIN {c} AS c ON c.id = m.contact_id "
        f"WHERE m.id = %s{lock}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, item.row.pk])
        row = cursor.fetchone()
    if row is None:
        return None
    status, lease_token, attempts = row[:3]
    contact_values = row[3 : 3 + len(_CONTACT_FIELDS)]
    facts = _Facts(
        status=status,
        lease_token=_LEASE_TOKEN.to_python(lease_token) if lease_token else None,
        attempts=attempts,
        contact=_contact_from(contact_values) if contact_values[0] is not None else None,
    )
    if not item.row.is_test:
        rest = row[3 + len(_CONTACT_FIELDS) :]
        facts.policy, kind = rest[:2]
        facts.transactional = kind == Channel.Kind.TRANSACTIONAL
        facts.channel_status, facts.type_status, suppressed, forgotten = rest[2:6]
        type_sent, channel_sent = rest[6:]
        facts.suppressed = bool(suppressed) or bool(forgotten)
        facts.type_sent = type_sent or 0
        facts.channel_sent = channel_sent
    return facts


_LEASE_TOKEN = Message._meta.get_field("lease_token")
_ATTRIBUTES = Contact._meta.get_field("attributes")


def _contact_from(values) -> Contact:
    fields = dict(zip(_CONTACT_FIELDS, values, strict=True))
    fields["attributes"] = _ATTRIBUTES.from_db_value(fields["attributes"], None, connection)
    fields["blocklisted"] = bool(fields["blocklisted"])
    contact = Contact(**fields)
    contact._state.adding = False
    contact._state.db = connection.alias
    return contact


def _skip_reason(facts, contact, address, message_type) -> str | None:
    if contact.blocklisted:
        return SkipReason.BLOCKLISTED
    if not address:
        return SkipReason.NO_ADDRESS
    reason = consent_skip_reason(
        policy=facts.policy,
        channel_status=facts.channel_status,
        type_status=facts.type_status,
    )
    if reason:
        return reason
    if facts.suppressed:
        return SkipReason.SUPPRESSED
    if message_type.frequency_limit and facts.type_sent >= message_type.frequency_limit:
        return SkipReason.FREQUENCY_CAP
    daily_cap = settings.WAYMARK_SENDING["DAILY_CAP"]
    if (
        not facts.transactional
        and facts.channel_sent is not None
        and facts.channel_sent >= daily_cap
    ):
        return SkipReason.DAILY_CAP
    return None
