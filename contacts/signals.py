"""Signals the contacts app sends; higher apps connect receivers in ready().

`events_recorded` is sent with a batch of new events shortly after they were
stored (contacts.services.events_dispatch), inside the transaction that
marks them dispatched: a receiver's writes (enrollments, say) commit or roll
back together with that mark, so no event is handled twice or lost.
"""

from django.dispatch import Signal

# kwargs: events (list of contacts.models.Event, in the order they were stored).
# They come with id, contact_id and name loaded, the rest deferred: a batch
# is thousands of events, and a receiver reads anything else in bulk from the
# database (they are stored there), not event by event.
events_recorded = Signal()

# Sent by contacts.services.contact_forget and contact_delete, inside their
# transaction with the contact's row locked, before its own data is erased:
# each app above erases what it keeps about the contact (consent ledger,
# messages, journey passages) in the same transaction.
# kwargs: contact (contacts.models.Contact, as it still is), forget (bool:
# the row stays, anonymised; False: it is deleted right after), source (str).
contact_forgetting = Signal()

# Sent by the services that add members to a list (lists/subscribe, the
# subscriptions API, the admin), inside their transaction, with the contacts
# who were not members before: apps above start what a list join starts.
# kwargs: contact_list_id (int), contact_ids (list of int).
list_members_joined = Signal()
