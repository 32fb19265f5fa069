"""Write paths for consent, and the send-time consent check."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from subscriptions.consent import consent_skip_reason, consent_states
from subscriptions.models import Channel, ConsentRecord, MessageType, Subscription
from subscriptions.signals import subscription_changed

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

    if (
        message_type is not None
        and message_type.policy == MessageType.Policy.DOUBLE_OPT_IN
        and status == Status.SUBSCRIBED
        and not confirmed
    ):
        status = Status.PENDING

    now = timezone.now()
    scope = {"channel": channel} if channel else {"message_type": message_type}
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update().filter(contact=contact, **scope).first()
        )
        previous = subscription.status if subscription else None
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
    return SubscriptionChange(subscription, previous, changed=True)


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
