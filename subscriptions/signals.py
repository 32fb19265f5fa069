from django.dispatch import Signal

# kwargs: subscription (subscriptions.models.Subscription), previous_status (str | None)
subscription_changed = Signal()
