"""Signal receivers: subscriptions and the ESPs (through django-anymail) tell
messaging what happened; services act."""

from anymail.signals import inbound, tracking
from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver

from contacts.redis import default_queue
from contacts.signals import contact_forgetting
from messaging.models import (
    Engagement,
    InAppMessage,
    Message,
    RejectedAddress,
    SentContent,
    Suppression,
)
from messaging.services.provider_events import inbound_unsubscribe_record, provider_event_record
from subscriptions.models import Subscription
from subscriptions.signals import subscription_changed


@receiver(subscription_changed, dispatch_uid="messaging.subscription_changed")
def on_subscription_changed(sender, subscription, previous_status, **kwargs):
    if subscription.message_type_id is None or subscription.status != Subscription.Status.PENDING:
        return
    from messaging.tasks import messaging_confirmation_task

    key = f"{subscription.pk}:{subscription.updated_at.timestamp():.6f}"
    transaction.on_commit(
        lambda: default_queue().enqueue(
            messaging_confirmation_task,
            contact_id=subscription.contact_id,
            message_type_id=subscription.message_type_id,
            key=key,
        )
    )


@receiver(tracking, dispatch_uid="messaging.anymail_tracking")
def on_provider_tracking(sender, event, esp_name, **kwargs):
    provider_event_record(event=event, esp_name=esp_name)


@receiver(inbound, dispatch_uid="messaging.anymail_inbound")
def on_provider_inbound(sender, event, esp_name, **kwargs):
    inbound_unsubscribe_record(message=event.message, esp_name=esp_name)


@receiver(contact_forgetting, dispatch_uid="messaging.contact_forgetting")
def on_contact_forgetting(sender, contact, forget, **kwargs):
    messages_erase_contact(contact=contact)


def messages_erase_contact(*, contact):
    """What messaging keeps about a contact who is forgotten or deleted.

    The send log stays for aggregate metrics (status, times, template,
    engagement kinds and times) without what identifies the person: address,
    subject, template data, links, errors (which may quote the address), the
    clicked URLs and provider details of engagements, the in-app inbox, the
    content kept of the messages sent (SentContent), and the plain-text
    suppression entries for its addresses (the digests in
    contacts.ForgottenAddress take their place). Queued messages are skipped.
    """
    mine = Message.objects.filter(contact=contact)
    mine.filter(status=Message.Status.QUEUED).update(
        status=Message.Status.SKIPPED,
        skip_reason=Message.SkipReason.SUPPRESSED,
        next_attempt_at=None,
        locked_until=None,
        lease_token=None,
    )
    mine.update(to_address="", subject="", context={}, links=[], error="")
    Engagement.objects.filter(Q(contact=contact) | Q(message__contact=contact)).update(
        url="", details={}
    )
    InAppMessage.objects.filter(contact=contact).delete()
    # What the messages said, as sent: names, addresses, the contact's data.
    SentContent.objects.filter(message__contact=contact).delete()
    if contact.email:
        Suppression.objects.filter(address=contact.email).delete()
    if contact.phone:
        RejectedAddress.objects.filter(address=contact.phone).delete()
