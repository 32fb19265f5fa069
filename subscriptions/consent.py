"""Who may be sent what: the consent rules, in one place.

`consent_skip_reason` is the rule itself, a pure function of the policy and
the stored statuses, so it can be tested as a table. `consent_states` reads
the statuses for many contacts at once. Callers (the sending pipeline) add
what is not consent: blocklist, addresses, suppressions, frequency caps.
"""

from django.db import models
from django.db.models import Q

from subscriptions.models import MessageType, Subscription

Status = Subscription.Status
Policy = MessageType.Policy


class ConsentSkipReason(models.TextChoices):
    """Why consent stops a send. Owned here; messaging's skip reasons include these."""

    CHANNEL_UNSUBSCRIBED = "channel_unsubscribed", "Unsubscribed from the channel"
    MESSAGE_TYPE_UNSUBSCRIBED = (
        "message_type_unsubscribed",
        "Unsubscribed from the message type",
    )
    NOT_OPTED_IN = "not_opted_in", "Never subscribed to an opt-in message type"
    NOT_CONFIRMED = "not_confirmed", "Double opt-in not confirmed"


def consent_skip_reason(
    *, policy: str, channel_status: str | None, type_status: str | None
) -> str | None:
    """Why a contact with these stored statuses may not receive a message of
    this policy, or None if they may.

    Stored unsubscribes always count, on transactional channels too: there
    contacts are never offered an unsubscribe, so such a row can only date
    from when the channel was marketing, and honouring it is the safe
    reading. An opt-in or double-opt-in type needs a subscription whatever
    its channel's kind.
    """
    if channel_status == Status.UNSUBSCRIBED:
        return ConsentSkipReason.CHANNEL_UNSUBSCRIBED
    if type_status == Status.UNSUBSCRIBED:
        return ConsentSkipReason.MESSAGE_TYPE_UNSUBSCRIBED
    if policy == Policy.OPT_IN and type_status != Status.SUBSCRIBED:
        return ConsentSkipReason.NOT_OPTED_IN
    if policy == Policy.DOUBLE_OPT_IN and type_status != Status.SUBSCRIBED:
        if type_status == Status.PENDING:
            return ConsentSkipReason.NOT_CONFIRMED
        return ConsentSkipReason.NOT_OPTED_IN
    return None


def consent_states(*, contact_ids, message_type: MessageType) -> dict:
    """{contact_id: (channel_status, type_status)} for every contact given, in one query.

    A contact without stored choices maps to (None, None).
    """
    states = dict.fromkeys(contact_ids, (None, None))
    rows = Subscription.objects.filter(
        Q(channel_id=message_type.channel_id) | Q(message_type_id=message_type.pk),
        contact_id__in=list(states),
    ).values_list("contact_id", "channel_id", "status")
    for contact_id, channel_id, status in rows:
        channel_status, type_status = states[contact_id]
        if channel_id:
            channel_status = status
        else:
            type_status = status
        states[contact_id] = (channel_status, type_status)
    return states
