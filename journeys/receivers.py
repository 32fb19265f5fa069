"""Signal receivers: lower apps tell journeys what happened; services act."""

from django.dispatch import receiver

from contacts.signals import event_recorded
from journeys.services.entry import journeys_handle_event


@receiver(event_recorded, dispatch_uid="journeys.event_recorded")
def on_event_recorded(sender, event, created, **kwargs):
    if created:
        journeys_handle_event(event=event)
