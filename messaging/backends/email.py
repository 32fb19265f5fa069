"""Email through Django's email backends: SMTP by default, any ESP through
django-anymail by setting EMAIL_BACKEND (or EMAIL_URL)."""

import contextlib
import re
import smtplib
from contextlib import contextmanager
from email.utils import formataddr, parseaddr
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from messaging.backends import PermanentDeliveryError, TransientDeliveryError
from messaging.backends.base import Backend, Rendered
from messaging.rendering import RenderError, html_to_text, render_string


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

    def address_for(self, contact) -> str:
        return contact.email or ""

    def check_template(self, template) -> dict:
        errors = {}
        if not template.subject:
            errors["subject"] = "An email needs a subject."
        if not template.html_body and not template.text_body:
            errors["html_body"] = "An email needs an HTML or a text body."
        return errors

    def render(self, template, context, *, links=None) -> Rendered:
        subject = " ".join(render_string(template.subject, context, html=False).split())
        html = render_string(template.html_body, context, html=True)
        text = render_string(template.text_body, context, html=False) or html_to_text(html)
        if html and template.preheader:
            preheader = render_string(template.preheader, context, html=True)
            html = _insert_preheader(html, preheader)
        if not subject:
            raise RenderError("The subject rendered empty.")
        return Rendered(subject=subject, html=html, text=text)

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
        try:
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
            raise TransientDeliveryError(f"{type(exc).__name__}: {exc}") from exc
        return message_id
