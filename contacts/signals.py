"""Signals the contacts app sends; higher apps connect receivers in ready().

`events_recorded` is sent with a batch of new events shortly after they were
stored (contacts.services.events_dispatch), inside the transaction that
marks them dispatched: a receiver's writes (enrollments, say) commit or roll
back together with that mark, so no event is handled twice or lost.
"""

from django.dispatch import Signal

# kwargs: events (list of contacts.models.Event, in the order they were stored)
events_recorded = Signal()
