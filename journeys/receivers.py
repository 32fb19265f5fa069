"""Signal receivers: lower apps tell journeys what happened; services act."""

from django.dispatch import receiver

from contacts.signals import contact_forgetting, events_recorded, list_members_joined
from journeys.services.entry import (
    journeys_erase_contact,
    journeys_handle_events,
    journeys_handle_list_joins,
    journeys_handle_subscription_changes,
)
from journeys.services.sending import journey_send_verdict
from messaging.signals import message_sending
from subscriptions.signals import subscriptions_changed


@receiver(events_recorded, dispatch_uid="journeys.events_recorded")
def on_events_recorded(sender, events, **kwargs):
    journeys_handle_events(events=events)


@receiver(message_sending, dispatch_uid="journeys.message_sending")
def on_message_sending(sender, message, hold, now, **kwargs):
    return journey_send_verdict(message=message, hold=hold, now=now)


@receiver(contact_forgetting, dispatch_uid="journeys.contact_forgetting")
def on_contact_forgetting(sender, contact, forget, **kwargs):
    journeys_erase_contact(contact_id=contact.pk)


@receiver(list_members_joined, dispatch_uid="journeys.list_members_joined")
def on_list_members_joined(sender, contact_list_id, contact_ids, **kwargs):
    journeys_handle_list_joins(contact_list_id=contact_list_id, contact_ids=contact_ids)


@receiver(subscriptions_changed, dispatch_uid="journeys.subscriptions_changed")
def on_subscriptions_changed(sender, changes, **kwargs):
    journeys_handle_subscription_changes(changes=changes)
