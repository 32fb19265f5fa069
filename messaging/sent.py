"""A sent message's content as staff see it: what was kept when it was sent
(messaging.models.SentContent), or, clearly apart, the template as it renders
today."""

import dataclasses
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist

from messaging import tracking
from messaging.models import Message
from messaging.rendering import RenderError
from messaging.services import message_render_again


@dataclass(frozen=True)
class Content:
    """A message's content for an admin page. The parts are shown escaped
    (the HTML goes into a sandboxed frame's srcdoc, escaped)."""

    subject: str = ""
    html: str = ""
    text: str = ""
    title: str = ""
    url: str = ""
    method: str = ""
    error: str = ""

    @property
    def body(self) -> str:
        """What a frame-less medium shows: the text, under its title if any."""
        if self.title and self.text:
            return f"{self.title}\n\n{self.text}"
        return self.title or self.text


def _shown(message, parts) -> Content:
    html = parts.get("html", "")
    if html:
        # Looking at it must record no open and no click: the tracking goes.
        html = tracking.untracked(html, message.pk, message.links or [])
        # Links open outside the frame, in a tab of their own.
        html = f'<base target="_blank">{html}'
    fields = {field.name for field in dataclasses.fields(Content)}
    return Content(**{**{k: v for k, v in parts.items() if k in fields}, "html": html})


def sent_content(message: Message) -> Content | None:
    """What `message` carried when it was sent, or None when nothing is kept
    (not sent, sent before content was kept, or past WAYMARK_SENT_CONTENT_DAYS)."""
    try:
        kept = message.sent_content
    except ObjectDoesNotExist:
        return None
    return _shown(message, kept.parts)


def todays_preview(message: Message) -> Content:
    """`message`'s template rendered again today for its contact, with the
    trigger data it was sent with, without tracking: NOT what was sent (the
    template and the contact's attributes may have changed). A failure is
    reported, not raised."""
    if message.contact_id is None:
        return Content(error="A test send has no contact to render it for.")
    try:
        rendered = message_render_again(message=message)
    except (RenderError, ImproperlyConfigured) as exc:
        return Content(error=f"This template can no longer be rendered for it: {exc}")
    return _shown(message, dataclasses.asdict(rendered))
