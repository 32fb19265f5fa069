"""Signals the messaging app sends; higher apps connect receivers in ready().

`message_sending` is sent at the instant of sending, inside the transaction
that marks the message `sending`, so whoever asked for the send (a journey)
can check that its reason still holds. A receiver returns None to let the
send go on, or one of the verdicts below.
"""

from dataclasses import dataclass
from datetime import datetime

from django.dispatch import Signal

# kwargs: message (messaging.models.Message, its row locked), hold (what the
# caller passed to messages_send for this message, e.g. a journey's lease
# token; None when messaging's own retry pass sends it), now (datetime).
message_sending = Signal()


@dataclass(frozen=True)
class Skip:
    """Do not send, ever: record the message as skipped with this reason."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Defer:
    """Not now: leave the message queued (to be tried at `until`, or when the
    caller asks again if `until` is None)."""

    until: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class Abandon:
    """Someone else is now responsible for this send (the caller lost its
    claim): touch nothing."""

    detail: str = ""


Verdict = Skip | Defer | Abandon
