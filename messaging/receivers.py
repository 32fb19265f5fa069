"""Signal receivers: subscriptions and the ESPs (through django-anymail) tell
messaging what happened; services act."""

from anymail.signals import inbound, tracking
from django.db import transaction
from django.dispatch import receiver

from contacts.redis import default_queue
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
