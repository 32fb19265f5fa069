"""Signal receivers: contacts tells subscriptions what happened; services act."""

from django.dispatch import receiver

from contacts.signals import contact_forgetting
from subscriptions.models import ConsentRecord, Subscription


@receiver(contact_forgetting, dispatch_uid="subscriptions.contact_forgetting")
def on_contact_forgetting(sender, contact, forget, **kwargs):
    consent_erase_contact(contact=contact)


def consent_erase_contact(*, contact):
    """A contact asked to be forgotten (or is deleted): its consent ledger and
    subscription state go. The ledger is never deleted otherwise; a forgotten
    contact's addresses are refused at send time (contacts.ForgottenAddress),
    so no consent is needed to keep them unsent."""
    ConsentRecord.objects.filter(contact=contact).delete()
    Subscription.objects.filter(contact=contact).delete()
