"""The double opt-in confirmation email.

Subscribing to a double-opt-in message type leaves the subscription
`pending` (subscriptions.services.subscription_set) and tells listeners;
messaging then sends this email, whose signed link confirms. Until the link
is followed the contact gets nothing of that type.
"""

from django.conf import settings
from django.db import transaction

from contacts.models import Contact
from messaging.models import Message, Template
from messaging.services.sending import SendResult, message_send
from subscriptions.models import Channel, MessageType
from subscriptions.tokens import confirmation_url

SYSTEM_CHANNEL = "System email"
SYSTEM_MESSAGE_TYPE = "Subscription confirmations"

DEFAULT_SUBJECT = "Please confirm: {{ event.message_type }}"
DEFAULT_HTML = """\
<div style="font-family: Helvetica, Arial, sans-serif; color: #1f2933; line-height: 1.5;">
<p>Hi {% firstof contact.first_name 'there' %},</p>
<p>You asked to receive <strong>{{ event.message_type }}</strong>. Please confirm that
this is your address:</p>
<p><a href="{{ event.confirm_url }}" style="display: inline-block; padding: 12px 20px;
background-color: #0b6e4f; color: #ffffff; border-radius: 6px; text-decoration: none;">
Yes, subscribe me</a></p>
<p>If you did not ask for this, ignore this email: nothing will be sent to you.</p>
<p><a href="{{ links.preferences }}">Manage what you receive</a></p>
</div>
"""


def confirmation_template() -> Template:
    """The template confirmations are sent with (WAYMARK_CONFIRMATION_TEMPLATE),
    created on first use on a transactional "System email" channel."""
    name = settings.WAYMARK_CONFIRMATION_TEMPLATE
    template = Template.objects.select_related("message_type__channel").filter(name=name).first()
    if template is not None:
        return template
    with transaction.atomic():
        channel, _ = Channel.objects.get_or_create(
            name=SYSTEM_CHANNEL,
            defaults={
                "medium": Channel.Medium.EMAIL,
                "kind": Channel.Kind.TRANSACTIONAL,
                "description": "Emails Waymark itself sends, such as subscription confirmations.",
            },
        )
        message_type, _ = MessageType.objects.get_or_create(
            channel=channel,
            name=SYSTEM_MESSAGE_TYPE,
            defaults={
                "policy": MessageType.Policy.OPT_OUT,
                "track_opens": False,
                "track_clicks": False,
            },
        )
        template, _ = Template.objects.get_or_create(
            name=name,
            defaults={
                "message_type": message_type,
                "subject": DEFAULT_SUBJECT,
                "html_body": DEFAULT_HTML,
            },
        )
    return Template.objects.select_related("message_type__channel").get(pk=template.pk)


def double_opt_in_confirmation_send(*, contact_id, message_type_id, key) -> SendResult | None:
    """Send the confirmation for a pending subscription, once for `key`."""
    contact = Contact.objects.filter(pk=contact_id).first()
    message_type = MessageType.objects.select_related("channel").filter(pk=message_type_id).first()
    if contact is None or message_type is None:
        return None  # forgotten or deleted since the request
    return message_send(
        contact=contact,
        template=confirmation_template(),
        idempotency_key=f"confirmation:{key}",
        origin=Message.Origin.SYSTEM,
        context={
            "event": {
                "message_type": message_type.name,
                "message_type_description": message_type.description,
                "confirm_url": confirmation_url(contact, message_type),
            }
        },
    )
