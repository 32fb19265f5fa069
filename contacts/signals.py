"""Signals the contacts app sends; higher apps connect receivers in ready().

`event_recorded` is sent inside the transaction that stored the event, so a
receiver's writes (enrollments, say) commit or roll back together with it.
"""

from django.dispatch import Signal

# kwargs: event (contacts.models.Event), created (bool: False when a client
# re-sent an event id that was already stored and the row was updated)
event_recorded = Signal()
