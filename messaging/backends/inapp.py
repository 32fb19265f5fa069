"""In-app messages: stored for the app to fetch (messaging.models.InAppMessage).

Nothing leaves Waymark: delivering is writing the inbox row, once per
message however often delivery is tried. The app names its user by user id
or email, which is therefore the address.
"""

from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError
from django.utils import timezone

from messaging.backends import PermanentDeliveryError, TransientDeliveryError
from messaging.backends.base import Backend, Rendered
from messaging.backends.push import check_notification, render_notification
from messaging.models import InAppMessage
from messaging.rendering import RenderError


class InAppBackend(Backend):
    medium = "in_app"
    template_fields = ("title", "text_body", "link_url")

    def address_for(self, contact) -> str:
        return contact.user_id or contact.email or ""

    def check_template(self, template) -> dict:
        # The app opens the link itself: an https URL, or a deep link of its own.
        return check_notification(template, noun="An in-app message", web=False)

    def render(self, template, context, *, links=None) -> Rendered:
        rendered = render_notification(template, context, web=False, max_bytes=None)
        for name, value in (("title", rendered.title), ("url", rendered.url)):
            limit = InAppMessage._meta.get_field(name).max_length
            if len(value) > limit:
                raise RenderError(
                    f"The {name} rendered {len(value)} characters long; at most {limit} fit."
                )
        return rendered

    def deliver(self, message, rendered) -> str:
        days = settings.WAYMARK_IN_APP_EXPIRY_DAYS
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            entry, _ = InAppMessage.objects.get_or_create(
                message_id=message.pk,
                defaults={
                    "contact_id": message.contact_id,
                    "title": rendered.title,
                    "body": rendered.text,
                    "url": rendered.url,
                    "expires_at": expires_at,
                },
            )
        except IntegrityError as exc:
            raise PermanentDeliveryError(f"Could not store the in-app message: {exc}") from exc
        except DatabaseError as exc:
            raise TransientDeliveryError(f"Could not store the in-app message: {exc}") from exc
        return f"in-app-{entry.pk}"
