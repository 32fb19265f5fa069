"""What subscriptions adds to the contact page (contacts.admin_timeline): the
contact's channels and message types with their policies and states, and
every consent change on the timeline (contacts.timeline)."""

from django.urls import reverse

from contacts import timeline
from contacts.admin_timeline import Panel, register_panel
from subscriptions.models import ConsentRecord
from subscriptions.selectors import contact_subscriptions


class ConsentSource(timeline.Source):
    """Each change in the consent ledger: subscribes, unsubscribes,
    confirmations, with who or what made it."""

    name = "consent"
    permission = "subscriptions.view_consentrecord"

    def entries(self, window):
        records = ConsentRecord.objects.filter(contact=window.contact).select_related(
            "channel", "message_type__channel", "actor"
        )
        for record in self.newest(window, records, "created_at"):
            yield timeline.Entry(
                record.created_at,
                self.name,
                record.pk,
                "admin/subscriptions/timeline/consent.html",
                {"record": record},
            )


class SubscriptionsPanel(Panel):
    """Every channel and message type, its policy, and the contact's state."""

    name = "subscriptions"
    title = "Subscriptions"
    template = "admin/subscriptions/contact_page/subscriptions.html"
    permission = "subscriptions.view_subscription"
    order = 10

    def context(self, contact, user):
        may_export = user.has_perm("subscriptions.view_consentrecord")
        return {
            "channels": contact_subscriptions(contact=contact),
            "export_url": (
                reverse("admin:subscriptions_consentrecord_export", args=[contact.pk])
                if may_export
                else ""
            ),
        }


timeline.register(ConsentSource())
register_panel(SubscriptionsPanel())
