"""Read paths for the subscriber's pages."""

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from contacts.models import ListMembership
from subscriptions.consent import ConsentSkipReason, consent_skip_reason
from subscriptions.models import Channel, ConsentRecord, ConsentSource, MessageType, Subscription

Status = Subscription.Status

# Shown for a double-opt-in subscription still awaiting confirmation when the
# link sent for it no longer works: subscribing again sends a new one.
EXPIRED = "expired"


@dataclass(frozen=True)
class MessageTypeChoice:
    message_type: MessageType
    # The contact's own choice for the type, the channel aside (choice_status).
    status: str

    @property
    def receives(self) -> bool:
        """Checked on the preference center: subscribed, or awaiting confirmation."""
        return self.status in (Status.SUBSCRIBED, Status.PENDING)


@dataclass(frozen=True)
class ChannelChoices:
    channel: Channel
    unsubscribed: bool
    message_types: list[MessageTypeChoice] = field(default_factory=list)


@dataclass(frozen=True)
class AlwaysSent:
    """A transactional message type: no choice, but shown so the subscriber
    knows what still comes (and why a receipt's link led here)."""

    message_type: MessageType
    # False only for an unsubscribe stored while its channel was marketing,
    # which still counts (subscriptions.consent).
    sent: bool


@dataclass(frozen=True)
class PreferenceCenter:
    contact: object
    channels: list[ChannelChoices]
    always_sent: list[AlwaysSent]

    @property
    def message_types(self) -> list[MessageTypeChoice]:
        return [choice for channel in self.channels for choice in channel.message_types]


def choice_status(
    message_type: MessageType, stored: str | None, updated_at: datetime | None = None
) -> str:
    """The contact's own choice for a message type, given its stored status and
    when that was set: subscribed, pending, EXPIRED (pending, but its
    confirmation link has expired), or unsubscribed (which includes an opt-in
    type never subscribed to). The channel is left aside."""
    if stored == Status.PENDING:
        max_age = settings.WAYMARK_CONFIRMATION_MAX_AGE
        if updated_at is not None and updated_at < timezone.now() - max_age:
            return EXPIRED
        return Status.PENDING
    reason = consent_skip_reason(
        policy=message_type.policy, channel_status=None, type_status=stored
    )
    return Status.SUBSCRIBED if reason is None else Status.UNSUBSCRIBED


def preference_center(*, contact) -> PreferenceCenter:
    """Every message type, grouped by channel, with the contact's choices: two
    queries, however many channels and types there are.

    Marketing channels come with their types' states; channels without a
    message type are left out (there is nothing on them to receive).
    """
    channel_status, type_status = {}, {}
    for channel_id, message_type_id, status, updated_at in Subscription.objects.filter(
        contact=contact
    ).values_list("channel_id", "message_type_id", "status", "updated_at"):
        if channel_id:
            channel_status[channel_id] = status
        else:
            type_status[message_type_id] = (status, updated_at)

    channels: dict[int, ChannelChoices] = {}
    always_sent = []
    message_types = MessageType.objects.select_related("channel").order_by(
        "channel__medium", "channel__name", "name"
    )
    for message_type in message_types:
        channel = message_type.channel
        stored, updated_at = type_status.get(message_type.pk, (None, None))
        if channel.is_transactional:
            reason = consent_skip_reason(
                policy=message_type.policy,
                channel_status=channel_status.get(channel.pk),
                type_status=stored,
            )
            always_sent.append(AlwaysSent(message_type, sent=reason is None))
            continue
        if channel.pk not in channels:
            channels[channel.pk] = ChannelChoices(
                channel, unsubscribed=channel_status.get(channel.pk) == Status.UNSUBSCRIBED
            )
        channels[channel.pk].message_types.append(
            MessageTypeChoice(message_type, choice_status(message_type, stored, updated_at))
        )
    return PreferenceCenter(contact, list(channels.values()), always_sent)


@dataclass(frozen=True)
class SubscriptionIds:
    """A contact's subscription state as Iterable's user profile lists it."""

    email_list_ids: list[int]
    unsubscribed_channel_ids: list[int]
    # Opt-out message types the contact unsubscribed from.
    unsubscribed_message_type_ids: list[int]
    # Opt-in and double-opt-in message types the contact subscribed to (a
    # double-opt-in one once confirmed: one awaiting confirmation is in neither list).
    subscribed_message_type_ids: list[int]


def subscription_ids(*, contact) -> SubscriptionIds:
    """The ids of the lists, channels and message types that make up the
    contact's subscription state, in two queries."""
    channels, unsubscribed, subscribed = [], [], []
    rows = Subscription.objects.filter(contact=contact).values_list(
        "channel_id", "message_type_id", "message_type__policy", "status"
    )
    for channel_id, message_type_id, policy, status in rows:
        if channel_id:
            if status == Status.UNSUBSCRIBED:
                channels.append(channel_id)
        elif policy == MessageType.Policy.OPT_OUT:
            if status == Status.UNSUBSCRIBED:
                unsubscribed.append(message_type_id)
        elif status == Status.SUBSCRIBED:
            subscribed.append(message_type_id)
    lists = ListMembership.objects.filter(contact=contact).values_list("contact_list_id", flat=True)
    return SubscriptionIds(
        email_list_ids=sorted(lists),
        unsubscribed_channel_ids=sorted(channels),
        unsubscribed_message_type_ids=sorted(unsubscribed),
        subscribed_message_type_ids=sorted(subscribed),
    )


@dataclass(frozen=True)
class MessageTypeState:
    """A message type as it stands for one contact, for staff."""

    message_type: MessageType
    # The stored row for the type (None: the contact never chose).
    subscription: Subscription | None
    # Why nothing of this type reaches the contact now (consent_skip_reason's
    # label), or "" when it does.
    blocked_by: str

    @property
    def state(self) -> str:
        if self.subscription is not None:
            return self.subscription.get_status_display()
        if self.message_type.policy == MessageType.Policy.OPT_OUT:
            return "Never chose (opt-out: receives it)"
        return "Never subscribed"


@dataclass(frozen=True)
class ChannelState:
    channel: Channel
    subscription: Subscription | None
    message_types: list[MessageTypeState] = field(default_factory=list)


def contact_subscriptions(*, contact) -> list[ChannelState]:
    """Every channel and message type with the contact's stored choice, its
    source and time, and whether consent lets the type reach them: two
    queries, however many channels and types there are. Channels without a
    message type are listed only when the contact has a row for them."""
    by_channel, by_type = {}, {}
    for row in Subscription.objects.filter(contact=contact):
        if row.channel_id:
            by_channel[row.channel_id] = row
        else:
            by_type[row.message_type_id] = row
    channels: dict[int, ChannelState] = {}
    types = MessageType.objects.select_related("channel").order_by(
        "channel__medium", "channel__name", "name"
    )
    for message_type in types:
        channel = message_type.channel
        if channel.pk not in channels:
            channels[channel.pk] = ChannelState(channel, by_channel.get(channel.pk))
        stored = by_type.get(message_type.pk)
        channel_row = by_channel.get(channel.pk)
        reason = consent_skip_reason(
            policy=message_type.policy,
            channel_status=channel_row.status if channel_row else None,
            type_status=stored.status if stored else None,
        )
        channels[channel.pk].message_types.append(
            MessageTypeState(
                message_type, stored, ConsentSkipReason(reason).label if reason else ""
            )
        )
    missing = [pk for pk in by_channel if pk not in channels]
    for channel in Channel.objects.filter(pk__in=missing) if missing else ():
        channels[channel.pk] = ChannelState(channel, by_channel[channel.pk])
    return list(channels.values())


CONSENT_LEDGER_COLUMNS = (
    "time", "action", "channel", "message type", "source", "staff member", "ip address",
    "user agent", "note",
)  # fmt: skip
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def consent_ledger_rows(*, contact):
    """The contact's consent ledger, oldest first, as CSV rows (with a header
    row): read in chunks through the (contact, created_at) index, so a long
    ledger is never held in memory at once. Text a spreadsheet would run as
    a formula starts with an apostrophe."""
    actions = dict(ConsentRecord.Action.choices)
    sources = dict(ConsentSource.choices)
    yield CONSENT_LEDGER_COLUMNS
    rows = (
        ConsentRecord.objects.filter(contact=contact)
        .order_by("created_at", "pk")
        .values_list(
            "created_at",
            "action",
            "channel__name",
            "message_type__channel__name",
            "message_type__name",
            "source",
            "actor__username",
            "ip_address",
            "user_agent",
            "note",
        )
    )
    for row in rows.iterator(chunk_size=2000):
        at, action, channel, type_channel, type_name, source, actor, ip, agent, note = row
        yield tuple(
            _cell(value)
            for value in (
                at.isoformat(),
                actions.get(action, action),
                channel or type_channel,
                type_name,
                sources.get(source, source),
                actor,
                ip,
                agent,
                note,
            )
        )
