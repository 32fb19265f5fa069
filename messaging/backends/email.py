"""Email delivery through Django's email backends (SMTP by default; any ESP
through django-anymail by setting EMAIL_BACKEND)."""

import smtplib
from email.utils import formataddr, parseaddr
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from messaging.backends import PermanentDeliveryError, TransientDeliveryError


def _message_domain():
    address = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    return address.rpartition("@")[2] or urlsplit(settings.SITE_URL).hostname or "localhost"


def from_header(template):
    """The From header a template's emails carry."""
    if not template.from_email and not template.from_name:
        return settings.DEFAULT_FROM_EMAIL
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return formataddr((template.from_name or name, template.from_email or address))


def deliver_email(*, message, template, rendered, headers=None) -> str:
    """Send one email; return its Message-ID.

    The Message-ID is derived from the Message row, so should an ambiguous
    failure ever lead to a second attempt, receiving servers see the same id.
    """
    message_id = f"<waymark.{message.pk}@{_message_domain()}>"
    email = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=from_header(template),
        to=[message.to_address],
        reply_to=[template.reply_to] if template.reply_to else None,
        headers={"Message-ID": message_id, **(headers or {})},
        connection=get_connection(fail_silently=False),
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
