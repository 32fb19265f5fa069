"""Write paths of the messaging app; see each module."""

from messaging.services.engagement import engagement_record
from messaging.services.resend import Resend, interrupted_messages_q, messages_resend
from messaging.services.retries import messages_claim_due, messages_retry, retry_tick
from messaging.services.sending import (
    SendingInTransaction,
    SendRequest,
    SendResult,
    message_render_again,
    message_send,
    message_send_test,
    messages_send,
)
from messaging.services.sent_content import sent_content_prune

__all__ = [
    "Resend",
    "SendRequest",
    "SendResult",
    "SendingInTransaction",
    "engagement_record",
    "interrupted_messages_q",
    "message_render_again",
    "message_send",
    "message_send_test",
    "messages_claim_due",
    "messages_resend",
    "messages_retry",
    "messages_send",
    "retry_tick",
    "sent_content_prune",
]
