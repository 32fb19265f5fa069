"""Signal receivers: lower apps tell journeys what happened; services act."""

from django.dispatch import receiver

from contacts.signals import event_recorded
from journeys.services.entry import journeys_handle_event
from journeys.services.sending import journey_send_verdict
from messaging.signals import message_sending


@receiver(event_recorded, dispatch_uid="journeys.event_recorded")
def on_event_recorded(sender, event, created, **kwargs):
    if created:
        journeys_handle_event(event=event)


@receiver(message_sending, dispatch_uid="journeys.message_sending")
def on_message_sending(sender, message, hold, now, **kwargs):
    return journey_send_verdict(message=message, hold=hold, now=now)
