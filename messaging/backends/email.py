"""Email through Django's email backends: SMTP by default, any ESP through
django-anymail by setting EMAIL_BACKEND (or EMAIL_URL)."""

import contextlib
import re
import smtplib
from contextlib import contextmanager
from email.utils import formataddr, parseaddr
from urllib.parse import urlsplit

import css_inline
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from messaging import tracking
from messaging.backends import PermanentDeliveryError, TransientDeliveryError
from messaging.backends.base import Backend, Rendered
from messaging.rendering import RenderError, html_to_text, render_string, render_text_into_html

# A template variable that is one of the links a subscriber can leave by.
_UNSUBSCRIBE_LINK = re.compile(
    r"\{\{\s*(links\.unsubscribe|links\.preferences|unsubscribeUrl|hostedUnsubscribeUrl)\b"
)

# At-rules (media queries) cannot be inlined: they stay in a <style> block.
_CSS_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def _message_domain():
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    return address.rpartition("@")[2] or urlsplit(settings.SITE_URL).hostname or "localhost"


def from_header(template):
    """The From header a template's emails carry."""
    if not template.from_email and not template.from_name:
        return settings.DEFAULT_FROM_EMAIL
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return formataddr((template.from_name or name, template.from_email or address))


def _insert_preheader(html: str, preheader: str) -> str:
    hidden = (
        f'<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">{preheader}</div>'
    )
    match = re.search(r"<body[^>]*>", html, flags=re.IGNORECASE)
    if match:
        return html[: match.end()] + hidden + html[match.end() :]
    return hidden + html


class EmailBackend(Backend):
    medium = "email"
    template_fields = ("subject", "preheader", "html_body", "text_body")
    uses_suppressions = True
    sends_to_address = True

    def address_for(self, contact) -> str:
        return contact.email or ""

    def check_template(self, template) -> dict:
        errors = {}
        if not template.subject:
            errors["subject"] = "An email needs a subject."
        if not template.html_body and not template.text_body:
            errors["html_body"] = "An email needs an HTML or a text body."
        elif not template.message_type.channel.is_transactional and not any(
            _UNSUBSCRIBE_LINK.search(body or "")
            for body in (template.html_body, template.text_body)
        ):
            # Bulk-mail rules (CAN-SPAM, Gmail and Yahoo) want a visible way out too,
            # besides the List-Unsubscribe header every marketing email carries.
            errors["html_body"] = (
                "A marketing email needs an unsubscribe link: add "
                '<a href="{{ links.unsubscribe }}">Unsubscribe</a> (or '
                "{{ links.preferences }} for the preference center)."
            )
        return errors

    def render(self, template, context, *, links=None) -> Rendered:
        for name, value in (("from name", template.from_name), ("reply-to", template.reply_to)):
            if "\n" in value or "\r" in value:
                raise RenderError(f"The {name} contains a line break.")
        subject = " ".join(render_string(template.subject, context, html=False).split())
        if not subject:
            raise RenderError("The subject rendered empty.")
        html = render_string(template.html_body, context, html=True)
        text = render_string(template.text_body, context, html=False) or html_to_text(html)
        if html and template.preheader:
            preheader = render_text_into_html(template.preheader, context)
            html = _insert_preheader(html, preheader)
        if html and "<style" in html.lower():
            # Many mail clients ignore <style>: carry its rules on the elements.
            html = _CSS_INLINER.inline(html)
        headers = {}
        tracked_links = ()
        if links is not None:
            if html and links.track_clicks:
                html, found = tracking.track_links(html, links.message_id, keep=links.untracked)
                tracked_links = tuple(found)
            elif html:
                tracked_links = tuple(tracking.links_in(html, keep=links.untracked))
            if html and links.track_opens:
                html = tracking.add_open_pixel(html, links.message_id)
            if links.one_click:
                # RFC 2369 and RFC 8058: mail clients show an unsubscribe button
                # that POSTs "List-Unsubscribe=One-Click" to the HTTPS URL.
                targets = [f"<{links.one_click}>"]
                if links.mailto:
                    targets.append(f"<{links.mailto}>")
                headers["List-Unsubscribe"] = ", ".join(targets)
                headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return Rendered(subject=subject, html=html, text=text, headers=headers, links=tracked_links)

    @contextmanager
    def session(self):
        connection = get_connection(fail_silently=False)
        try:
            yield _EmailSession(connection)
        finally:
            # A connection that broke mid-batch may fail to close: nothing is lost.
            with contextlib.suppress(Exception):
                connection.close()

    def deliver(self, message, rendered) -> str:
        with self.session() as session:
            return session.deliver(message, rendered)


class _EmailSession:
    def __init__(self, connection):
        self.connection = connection

    def deliver(self, message, rendered) -> str:
        """Send one email; return its Message-ID.

        The connection is opened on the first message and reused for the rest
        of the batch; one that dropped is opened again.

        The Message-ID is derived from the Message row, so should an ambiguous
        failure ever lead to a second attempt, receiving servers see the same id.
        """
        template = message.template
        message_id = f"<waymark.{message.pk}@{_message_domain()}>"
        email = EmailMultiAlternatives(
            subject=rendered.subject,
            body=rendered.text,
            from_email=from_header(template),
            to=[message.to_address],
            reply_to=[template.reply_to] if template.reply_to else None,
            headers={"Message-ID": message_id, **rendered.headers},
            connection=self.connection,
        )
        if rendered.html:
            email.attach_alternative(rendered.html, "text/html")
        # django-anymail passes metadata to the ESP, whose tracking webhooks
        # return it: the surest way back to this row. Other backends ignore it.
        email.metadata = {"waymark_message_id": str(message.pk)}
        try:
            # Opens the connection if it is not open (first message, or after
            # a failure closed it); a no-op otherwise, so the batch reuses it.
            self.connection.open()
            email.send()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            error = f"recipient refused: {exc.recipients}"
            if all(400 <= code < 500 for code in codes):
                raise TransientDeliveryError(error) from exc
            raise PermanentDeliveryError(error) from exc
        except smtplib.SMTPResponseException as exc:
            error = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            if 400 <= exc.smtp_code < 500:
                raise TransientDeliveryError(error) from exc
            raise PermanentDeliveryError(error) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            # The connection is in an unknown state: the next message opens a new one.
            with contextlib.suppress(Exception):
                self.connection.close()
            raise TransientDeliveryError(f"{type(exc).__name__}: {exc}") from exc
        # An ESP behind django-anymail names the message by its own id; its
        # tracking webhooks use that id, so it is the one to keep.
        anymail_status = getattr(email, "anymail_status", None)
        if anymail_status is not None and anymail_status.message_id:
            return str(anymail_status.message_id)
        return message_id
