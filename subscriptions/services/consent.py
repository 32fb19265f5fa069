"""Write paths for consent, one change at a time, and the send-time consent check."""

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from contacts.models import Contact
from subscriptions.consent import consent_skip_reason, consent_states
from subscriptions.models import Channel, ConsentRecord, MessageType, Subscription
from subscriptions.selectors import EXPIRED, choice_status
from subscriptions.signals import subscription_changed, subscriptions_changed

Status = Subscription.Status
Action = ConsentRecord.Action


class ConsentError(ValueError):
    pass


@dataclass(frozen=True)
class SubscriptionChange:
    subscription: Subscription
    previous_status: str | None
    changed: bool


def subscription_set(
    *,
    contact,
    status: str,
    source: str,
    channel: Channel | None = None,
    message_type: MessageType | None = None,
    actor=None,
    ip_address: str | None = None,
    user_agent: str = "",
    note: str = "",
    confirmed: bool = False,
) -> SubscriptionChange:
    """Record a contact's choice for a channel or a message type, with its ledger entry.

    Setting the status it already has changes nothing and writes no record.
    Subscribing to a double-opt-in type only makes it `pending` unless
    `confirmed` is true, which only the confirmation link may pass.
    """
    if (channel is None) == (message_type is None):
        raise ConsentError("Give exactly one of channel and message_type.")
    if status not in Status.values:
        raise ConsentError(f"Unknown subscription status {status!r}.")
    scope_channel = channel or message_type.channel
    if scope_channel.is_transactional and status == Status.UNSUBSCRIBED:
        raise ConsentError(
            f"{scope_channel} is transactional: contacts cannot unsubscribe from it."
        )
    if channel is not None and status == Status.PENDING:
        raise ConsentError("Only message types await confirmation.")

    # Subscribing to a double-opt-in type asks for confirmation first, unless
    # the subscription is confirmed already (then there is nothing to change).
    needs_confirmation = (
        message_type is not None
        and message_type.policy == MessageType.Policy.DOUBLE_OPT_IN
        and status == Status.SUBSCRIBED
        and not confirmed
    )

    now = timezone.now()
    scope = {"channel": channel} if channel else {"message_type": message_type}
    with transaction.atomic():
        # One contact's consent changes one at a time: two requests creating the
        # same row at once (a mail client posting one-click twice) would
        # otherwise both insert it.
        list(Contact.objects.select_for_update().filter(pk=contact.pk).values_list("pk"))
        subscription = (
            Subscription.objects.select_for_update().filter(contact=contact, **scope).first()
        )
        previous = subscription.status if subscription else None
        if needs_confirmation and previous != Status.SUBSCRIBED:
            status = Status.PENDING
        if previous == status:
            return SubscriptionChange(subscription, previous, changed=False)
        if subscription is None:
            subscription = Subscription(contact=contact, **scope)
        subscription.status = status
        subscription.source = source
        subscription.updated_at = now
        subscription.save()
        action = {
            Status.SUBSCRIBED: Action.CONFIRMED if confirmed else Action.SUBSCRIBED,
            Status.UNSUBSCRIBED: Action.UNSUBSCRIBED,
            Status.PENDING: Action.CONFIRMATION_REQUESTED,
        }[status]
        ConsentRecord.objects.create(
            contact=contact,
            action=action,
            source=source,
            actor=actor,
            ip_address=ip_address,
            user_agent=user_agent[:512],
            note=note,
            **scope,
        )
        subscription_changed.send(
            sender=Subscription, subscription=subscription, previous_status=previous
        )
        subscriptions_changed.send(sender=Subscription, changes=[(subscription, previous)])
    return SubscriptionChange(subscription, previous, changed=True)


@dataclass(frozen=True)
class ChannelSaved:
    channel: Channel
    # Set when the channel just became transactional: how many contacts
    # unsubscribed from it or one of its message types while it was marketing.
    # Their unsubscribes still count (subscriptions.consent), so they get
    # nothing they unsubscribed from.
    unsubscribed_contacts: int = 0


def _lock_channels(*channel_ids):
    """Lock channel rows in id order (no deadlocks): channel_save and
    message_type_save both do, so the rules between a channel's kind and its
    message types' policies are checked against rows that cannot change."""
    ids = sorted({pk for pk in channel_ids if pk})
    if ids:
        list(Channel.objects.select_for_update().filter(pk__in=ids).order_by("pk").values("pk"))


def channel_check(*, channel: Channel) -> None:
    """Raise ValidationError (by field) unless `channel` may be saved as it is.

    Locks the channel's row for the rest of the caller's transaction, so the
    check still holds when the caller saves. The admin's form calls this;
    channel_save calls it again (harmless: the lock is already held).
    """
    with transaction.atomic():
        _lock_channels(channel.pk)
        channel.full_clean()


def channel_save(*, channel: Channel) -> ChannelSaved:
    """Create or change a channel, refusing what breaks a consent rule.

    A channel cannot become transactional while one of its message types is
    opt-in or double opt-in: sent regardless of consent, they would reach
    contacts who never subscribed. Raises ValidationError naming those types.
    A channel may become transactional while contacts are unsubscribed from
    it or its types: the unsubscribes stay and go on counting.
    """
    with transaction.atomic():
        was_transactional = (
            Channel.objects.filter(pk=channel.pk, kind=Channel.Kind.TRANSACTIONAL).exists()
            if channel.pk
            else False
        )
        channel_check(channel=channel)
        channel.save()
        unsubscribed = 0
        if channel.is_transactional and not was_transactional:
            unsubscribed = (
                Subscription.objects.filter(
                    Q(channel=channel) | Q(message_type__channel=channel),
                    status=Status.UNSUBSCRIBED,
                )
                .values("contact_id")
                .distinct()
                .count()
            )
    return ChannelSaved(channel, unsubscribed_contacts=unsubscribed)


def message_type_check(*, message_type: MessageType) -> None:
    """Raise ValidationError (by field) unless `message_type` may be saved as it is.

    Locks its row and those of its channel and of the channel it had, for the
    rest of the caller's transaction; see channel_check.
    """
    with transaction.atomic():
        stored_channel_id = (
            MessageType.objects.select_for_update()
            .filter(pk=message_type.pk)
            .values_list("channel_id", flat=True)
            .first()
            if message_type.pk
            else None
        )
        _lock_channels(message_type.channel_id, stored_channel_id)
        if message_type.channel_id:
            # Judge by the channel as stored now, not as the caller last read it.
            message_type.channel = Channel.objects.get(pk=message_type.channel_id)
        message_type.full_clean()


def message_type_save(*, message_type: MessageType) -> MessageType:
    """Create or change a message type, refusing what breaks a consent rule.

    Raises ValidationError when a transactional channel would get an opt-in
    or double-opt-in type; when an opt-in or double-opt-in type would become
    opt-out (everyone who never subscribed would get it: make a new type);
    or when a move to another channel would lift contacts' unsubscribes from
    the channel it leaves. Tightening is allowed: opt-out to opt-in or double
    opt-in (only those who subscribe get it from then on), and opt-in to
    double opt-in (those who subscribed gave consent: they stay subscribed,
    and new subscriptions need confirming).
    """
    with transaction.atomic():
        message_type_check(message_type=message_type)
        message_type.save()
    return message_type


def contact_consent_skip_reason(*, contact, message_type: MessageType) -> str | None:
    """Why this contact may not receive this message type now, or None if it may.

    One query; the rule itself is subscriptions.consent.consent_skip_reason.
    """
    channel_status, type_status = consent_states(
        contact_ids=[contact.pk], message_type=message_type
    )[contact.pk]
    return consent_skip_reason(
        policy=message_type.policy, channel_status=channel_status, type_status=type_status
    )


# --- The subscriber's own pages: preference center, one-click unsubscribe,
# --- double opt-in confirmation. Every change is the subscriber's, so each
# --- carries the request's IP address and user agent into the ledger.


def _confirmation_request_again(
    *, contact, message_type, source, ip_address, user_agent
) -> SubscriptionChange:
    """Ask again for the confirmation of a subscription whose link expired: a
    new request in the ledger, and the signal on which messaging sends a new
    confirmation email. Runs in preferences_save's transaction, rows locked."""
    subscription = Subscription.objects.get(contact=contact, message_type=message_type)
    subscription.source = source
    subscription.updated_at = timezone.now()
    subscription.save(update_fields=["source", "updated_at"])
    ConsentRecord.objects.create(
        contact=contact,
        message_type=message_type,
        action=Action.CONFIRMATION_REQUESTED,
        source=source,
        ip_address=ip_address,
        user_agent=user_agent[:512],
        note="The earlier confirmation link had expired.",
    )
    subscription_changed.send(
        sender=Subscription, subscription=subscription, previous_status=Status.PENDING
    )
    return SubscriptionChange(subscription, Status.PENDING, changed=True)


@dataclass(frozen=True)
class PreferenceChoice:
    """One choice made on the preference center: receive a channel or a
    message type (True), or not (False)."""

    scope: Channel | MessageType
    receive: bool


@dataclass(frozen=True)
class PreferencesSaved:
    changes: tuple[SubscriptionChange, ...]

    @property
    def awaiting_confirmation(self) -> list[MessageType]:
        """Message types this save left awaiting a confirmation email."""
        return [
            change.subscription.message_type
            for change in self.changes
            if change.subscription.status == Status.PENDING
        ]


def preferences_save(
    *, contact, choices, ip_address: str | None = None, user_agent: str = ""
) -> PreferencesSaved:
    """Apply the choices a subscriber made on the preference center, all or none.

    Only what differs from the stored state is written (one ledger record
    per real change, source preference_center), so a form posted twice, or
    the same choice from two tabs, records once; between tabs, the last
    choice for each channel and message type wins. Receiving a channel lifts
    an unsubscribe from it; receiving a message type subscribes to it (a
    double-opt-in type then awaits confirmation: messaging sends the email on
    the signal; one whose confirmation link expired gets a new one). Raises
    ConsentError, changing nothing, for a transactional channel or message
    type: those are always sent and offer no choice.
    """
    choices = list(choices)
    for choice in choices:
        channel = choice.scope if isinstance(choice.scope, Channel) else choice.scope.channel
        if channel.is_transactional:
            raise ConsentError(f"{choice.scope} is transactional: it is always sent.")
    common = {
        "contact": contact,
        "source": ConsentRecord.Source.PREFERENCE_CENTER,
        "ip_address": ip_address,
        "user_agent": user_agent,
    }
    changes = []
    with transaction.atomic():
        # Locked, so two tabs saving at once are applied one after the other.
        rows = Subscription.objects.select_for_update().filter(contact=contact)
        channel_status, type_status = {}, {}
        for channel_id, message_type_id, status, updated_at in rows.values_list(
            "channel_id", "message_type_id", "status", "updated_at"
        ):
            if channel_id:
                channel_status[channel_id] = status
            else:
                type_status[message_type_id] = (status, updated_at)
        for choice in choices:
            scope = choice.scope
            if isinstance(scope, Channel):
                if choice.receive == (channel_status.get(scope.pk) != Status.UNSUBSCRIBED):
                    continue
                status = Status.SUBSCRIBED if choice.receive else Status.UNSUBSCRIBED
                change = subscription_set(channel=scope, status=status, **common)
            else:
                current = choice_status(scope, *type_status.get(scope.pk, (None, None)))
                if choice.receive == (current in (Status.SUBSCRIBED, Status.PENDING)):
                    continue
                if choice.receive and current == EXPIRED:
                    change = _confirmation_request_again(message_type=scope, **common)
                else:
                    status = Status.SUBSCRIBED if choice.receive else Status.UNSUBSCRIBED
                    change = subscription_set(message_type=scope, status=status, **common)
            if change.changed:
                changes.append(change)
    return PreferencesSaved(tuple(changes))


def preferences_unsubscribe_all(
    *, contact, ip_address: str | None = None, user_agent: str = ""
) -> PreferencesSaved:
    """Unsubscribe the contact from every marketing channel ("unsubscribe from
    all marketing"). Transactional channels are untouched: they are always sent."""
    marketing = Channel.objects.filter(kind=Channel.Kind.MARKETING).order_by("pk")
    return preferences_save(
        contact=contact,
        choices=[PreferenceChoice(channel, receive=False) for channel in marketing],
        ip_address=ip_address,
        user_agent=user_agent,
    )


def unsubscribe_one_click(
    *, contact, message_type: MessageType, ip_address: str | None = None, user_agent: str = ""
) -> SubscriptionChange:
    """Unsubscribe through a message's one-click link (RFC 8058).

    WAYMARK_UNSUBSCRIBE_SCOPE decides what is left: the message type
    ("message_type") or its whole channel ("channel"). Doing it again changes
    nothing and writes no second record. Raises ConsentError for a
    transactional message type: it offers no unsubscribe.
    """
    if message_type.channel.is_transactional:
        raise ConsentError(f"{message_type} is transactional: it offers no unsubscribe.")
    if settings.WAYMARK_UNSUBSCRIBE_SCOPE == "channel":
        scope = {"channel": message_type.channel}
    else:
        scope = {"message_type": message_type}
    return subscription_set(
        contact=contact,
        status=Status.UNSUBSCRIBED,
        source=ConsentRecord.Source.ONE_CLICK,
        ip_address=ip_address,
        user_agent=user_agent,
        **scope,
    )


def double_opt_in_confirm(
    *, contact, message_type: MessageType, ip_address: str | None = None, user_agent: str = ""
) -> SubscriptionChange | None:
    """Confirm a double-opt-in subscription awaiting confirmation, through the
    link of the confirmation email; the ledger's `confirmed` record is the proof.

    Following the link again changes nothing. Returns None when nothing awaits
    confirmation (the contact unsubscribed since, or never asked): an old
    link does not subscribe anyone on its own.
    """
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update()
            .filter(contact=contact, message_type=message_type)
            .first()
        )
        if subscription is None or subscription.status not in (Status.PENDING, Status.SUBSCRIBED):
            return None
        return subscription_set(
            contact=contact,
            message_type=message_type,
            status=Status.SUBSCRIBED,
            confirmed=True,
            source=ConsentRecord.Source.CONFIRMATION_LINK,
            ip_address=ip_address,
            user_agent=user_agent,
        )
