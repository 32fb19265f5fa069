"""Whether a journey's message may still go out, asked at the instant of sending.

messaging sends `message_sending` inside the transaction that marks a
message `sending`; this answers for messages whose origin is a journey,
reading the enrollment (locked) and its journey again: a contact who left
the journey, an enrollment that moved to another step or is now held by
another worker, or a journey that stopped running since the batch began
stops the send.
"""

from django.conf import settings

from journeys.models import Enrollment, Journey
from messaging.models import Message
from messaging.signals import Abandon, Defer, Skip

SkipReason = Message.SkipReason


def journey_send_verdict(*, message, hold, now):
    """None to send; else messaging.signals' Skip, Defer or Abandon.

    `hold` is (lease token, step id, step counter) from the worker advancing
    the enrollment, or None when messaging's retry pass sends it later.
    """
    if message.origin != Message.Origin.JOURNEY or message.origin_id is None:
        return None
    enrollment = (
        Enrollment.objects.select_for_update(of=("self",))
        .select_related("journey")
        .only(
            "state",
            "lease_token",
            "current_step_id",
            "sequence",
            "exit_reason",
            "journey__state",
        )
        .filter(pk=message.origin_id)
        .first()
    )
    if enrollment is None:
        return Skip(SkipReason.LEFT_JOURNEY, "The enrollment no longer exists.")
    if hold is not None:
        token, step_id, sequence = hold
        if not enrollment.is_open:
            return Skip(SkipReason.LEFT_JOURNEY, _why_left(enrollment))
        if (enrollment.current_step_id, enrollment.sequence) != (step_id, sequence):
            return Skip(SkipReason.LEFT_JOURNEY, "Moved to another step before it was sent.")
        if enrollment.lease_token is None or str(enrollment.lease_token) != str(token):
            return Abandon("Another worker holds this enrollment now.")
    elif enrollment.state in (Enrollment.State.EXITED, Enrollment.State.FAILED):
        # A retry after the contact went on: a passage that ended normally
        # still wants its message, one that was cut short does not.
        return Skip(SkipReason.LEFT_JOURNEY, _why_left(enrollment))
    journey_state = enrollment.journey.state
    if journey_state == Journey.State.PAUSED:
        if hold is not None:
            return Defer(detail="The journey is paused: sent when it goes live again.")
        return Defer(
            until=now + settings.WAYMARK_SENDING["RETRY_BASE"], detail="The journey is paused."
        )
    if journey_state != Journey.State.LIVE:
        return Skip(SkipReason.JOURNEY_NOT_LIVE, f"The journey is {journey_state}.")
    return None


def _why_left(enrollment):
    reason = enrollment.exit_reason or enrollment.get_state_display().lower()
    return f"Left the journey ({reason}) before it was sent."
