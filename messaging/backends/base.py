"""What every delivery backend provides. See messaging.backends for the registry."""

from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rendered:
    """A template rendered for one contact, ready to deliver.

    Which fields a medium uses is its backend's business: email fills
    subject, html, text and headers; SMS and WhatsApp fill text; push fills
    title, text and url; a webhook fills method, url and text (the body).
    `links` are the URLs a recipient can follow (click tracking only ever
    redirects to one of these).
    """

    subject: str = ""
    html: str = ""
    text: str = ""
    title: str = ""
    url: str = ""
    method: str = ""
    headers: dict = field(default_factory=dict)
    links: tuple = ()

    @property
    def summary(self) -> str:
        """One line for the send log (Message.subject)."""
        line = self.subject or self.title or self.text
        return " ".join(line.split())[:500]


class Backend:
    """One medium's delivery. Subclasses override what their medium needs.

    Instances are shared by a whole process (messaging.backends.get_backend),
    so they keep no per-message state; per-batch state (an open SMTP
    connection) lives in the object `session()` yields.
    """

    medium = ""
    # Template fields this medium reads; the admin and checks use it.
    template_fields = ("text_body",)
    # Whether messaging.models.Suppression (bounced and complaining email
    # addresses) applies to this medium's addresses.
    uses_suppressions = False
    # Whether deliver() needs nothing but message.to_address, so a test can
    # be sent to any address typed in the admin.
    sends_to_address = False

    def address_for(self, contact) -> str:
        """The contact's address on this medium, or "" when there is none.

        Read at the instant of sending, so it is the current address. Raises
        messaging.backends.InvalidAddress when the address is malformed.
        """
        raise NotImplementedError

    def check_template(self, template) -> dict:
        """{field name: problem} for a template of this medium; empty when fine."""
        if not template.text_body:
            return {"text_body": "This channel needs a text body."}
        return {}

    def render(self, template, context: dict, *, links=None) -> Rendered:
        """Render `template` with `context` (messaging.context builds it).

        `links` (a messaging.context.MessageLinks or None) rewrites URLs for
        click tracking and adds the medium's own headers. Raises
        messaging.rendering.RenderError when the template cannot render.
        """
        raise NotImplementedError

    def content_to_keep(self, rendered: Rendered) -> dict:
        """The parts of a delivered message kept as what the contact received
        (messaging.models.SentContent). Headers are not kept: a webhook's
        may carry its target's credentials."""
        return {
            "subject": rendered.subject,
            "html": rendered.html,
            "text": rendered.text,
            "title": rendered.title,
            "url": rendered.url,
            "method": rendered.method,
        }

    def preview(self, template, context: dict) -> Rendered:
        """What the template looks like for this context, without tracking."""
        return self.render(template, context, links=None)

    @contextmanager
    def session(self):
        """A delivery session for a batch: `session.deliver(message, rendered)`.

        The default opens nothing; backends with connections worth reusing
        (SMTP) override this.
        """
        yield self

    def deliver(self, message, rendered: Rendered) -> str:
        """Hand one message over; return the provider's message id ("" if none).

        Raises TransientDeliveryError or PermanentDeliveryError (see
        messaging.backends). Runs outside any database transaction.
        """
        raise NotImplementedError
