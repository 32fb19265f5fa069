"""What messaging adds to a contact's timeline (contacts.timeline): each
message meant for them, with its outcome and content, and what happened to
it afterwards (deliveries, opens, clicks, bounces, complaints)."""

from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from contacts import timeline
from messaging.models import Engagement, Message
from messaging.rendering import RenderError
from messaging.services import message_render_again


@dataclass(frozen=True)
class Content:
    """A sent message's content, rendered again for the timeline. The parts
    come from the template engine marked safe: templates must escape them
    (the HTML goes into a sandboxed frame's srcdoc, escaped)."""

    subject: str = ""
    html: str = ""
    text: str = ""
    error: str = ""
    # The template was saved after the message was sent: what it shows now
    # may differ from what the contact received.
    template_changed: bool = False


def message_content(message: Message) -> Content:
    """`message` rendered again from its template and stored trigger data
    (message_render_again), without tracking; a failure is reported, not raised."""
    try:
        rendered = message_render_again(message=message)
    except (RenderError, ImproperlyConfigured) as exc:
        return Content(error=f"This message can no longer be shown: {exc}")
    changed = bool(message.sent_at and message.template.updated_at > message.sent_at)
    html = f'<base target="_blank">{rendered.html}' if rendered.html else ""
    text = rendered.text
    if rendered.title and not rendered.subject:
        text = f"{rendered.title}\n\n{text}" if text else rendered.title
    return Content(rendered.subject, html, text, template_changed=changed)


class MessageSource(timeline.Source):
    """Every message meant for the contact: sent, skipped (and why), failed
    or still queued. Sent ones show their content."""

    name = "message"
    permission = "messaging.view_message"

    def entries(self, window):
        # The (contact, created_at) index reads the contact's newest messages.
        messages = Message.objects.filter(contact=window.contact, is_test=False).select_related(
            "template__message_type__channel"
        )
        for message in self.newest(window, messages, "created_at"):
            # Rendering reads the contact: it is the one whose timeline this is.
            message.contact = window.contact
            content = message_content(message) if message.status == Message.Status.SENT else None
            yield timeline.Entry(
                message.created_at,
                self.name,
                message.pk,
                "admin/messaging/timeline/message.html",
                {"message": message, "content": content},
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
