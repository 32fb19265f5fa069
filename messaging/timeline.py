"""What messaging adds to a contact's timeline (contacts.timeline): each
message meant for them, with its outcome and the content it was sent with,
and what happened to it afterwards (deliveries, opens, clicks, bounces,
complaints)."""

from django.conf import settings

from contacts import timeline
from messaging.models import Engagement, Message
from messaging.sent import sent_content


class MessageSource(timeline.Source):
    """Every message meant for the contact: sent, skipped (and why), failed
    or still queued. Sent ones show the content they carried, as kept when
    they were sent (messaging.models.SentContent); none is rendered again."""

    name = "message"
    permission = "messaging.view_message"

    def entries(self, window):
        # The (contact, created_at) index reads the contact's newest messages;
        # their kept content comes in the same query, by primary key.
        messages = Message.objects.filter(contact=window.contact, is_test=False).select_related(
            "template", "sent_content"
        )
        for message in self.newest(window, messages, "created_at"):
            yield timeline.Entry(
                message.created_at,
                self.name,
                message.pk,
                "admin/messaging/timeline/message.html",
                {
                    "message": message,
                    "content": sent_content(message),
                    "kept_days": settings.WAYMARK_SENT_CONTENT_DAYS,
                },
            )


class EngagementSource(timeline.Source):
    """Deliveries, opens, clicks, bounces and complaints of the contact's messages."""

    name = "engagement"
    permission = "messaging.view_message"

    def entries(self, window):
        engagements = Engagement.objects.filter(contact=window.contact).select_related(
            "message__template"
        )
        for engagement in self.newest(window, engagements, "occurred_at"):
            yield timeline.Entry(
                engagement.occurred_at,
                self.name,
                engagement.pk,
                "admin/messaging/timeline/engagement.html",
                {"engagement": engagement},
            )


timeline.register(MessageSource())
timeline.register(EngagementSource())
