from django.dispatch import Signal

# kwargs: subscription (subscriptions.models.Subscription), previous_status (str | None)
subscription_changed = Signal()

# Sent once per write with every subscription it changed (one, or a whole
# batch of a bulk update), inside its transaction, after the rows are saved,
# so apps above can act on the whole batch set-based.
# kwargs: changes (list of (subscriptions.models.Subscription, previous_status: str | None))
subscriptions_changed = Signal()
