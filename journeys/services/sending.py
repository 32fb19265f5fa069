"""Whether a journey's message may still go out, asked at the instant of sending.

messaging sends `message_sending` inside the transaction that marks a
message `sending`; this answers for messages whose origin is a journey,
reading the enrollment (locked) and its journey again: a contact who left
the journey (or tracked its exit event, even one journeys have not yet
applied), an enrollment that moved to another step or is now held by
another worker, or a journey that stopped running since the batch began
stops the send.
"""

from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from contacts.models import Event
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
    enrollment = _locked_enrollment(message.origin_id)
    if enrollment is None:
        return Skip(SkipReason.LEFT_JOURNEY, "The enrollment no longer exists.")
    if enrollment.is_open and enrollment.exit_event_pending:
        # Tracked but not yet applied to journeys (they hear of events in
        # batches, moments later): it counts from the instant it was stored.
        return Skip(
            SkipReason.LEFT_JOURNEY,
            f"Left the journey (exit event: {enrollment.exit_event_pending}) before it was sent.",
        )
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
    journey_state = enrollment.journey_state
    if journey_state == Journey.State.PAUSED:
        if hold is not None:
            return Defer(detail="The journey is paused: sent when it goes live again.")
        return Defer(
            until=now + settings.WAYMARK_SENDING["RETRY_BASE"], detail="The journey is paused."
        )
    if journey_state != Journey.State.LIVE:
        return Skip(SkipReason.JOURNEY_NOT_LIVE, f"The journey is {journey_state}.")
    return None


@dataclass(frozen=True)
class _Enrollment:
    state: str
    lease_token: str | None
    current_step_id: int | None
    sequence: int
    exit_reason: str
    journey_state: str
    # The journey's exit event, if the contact has one stored but not yet dispatched.
    exit_event_pending: str | None = None

    @property
    def is_open(self):
        return self.state in Enrollment.OPEN_STATES

    def get_state_display(self):
        return Enrollment.State(self.state).label


def _locked_enrollment(enrollment_id) -> _Enrollment | None:
    """The enrollment (locked until the send's transaction ends) and its journey's state.

    Written as SQL: it runs once per message sent, and building the queryset
    costs more than running it.
    """
    e = Enrollment._meta.db_table
    j = Journey._meta.db_table
    ev = Event._meta.db_table
    lock = " FOR UPDATE OF e" if connection.features.has_select_for_update_of else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT e.state, e.lease_token, e.current_step_id, e.sequence, e.exit_reason, "
            f"j.state, (SELECT ev.name FROM {ev} AS ev WHERE ev.contact_id = e.contact_id "
            f"AND ev.name = j.exit_event_name AND NOT ev.dispatched LIMIT 1) "
            f"FROM {e} AS e JOIN {j} AS j ON j.id = e.journey_id WHERE e.id = %s{lock}",
            [enrollment_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    state, token, step_id, sequence, exit_reason, journey_state, exit_pending = row
    token = _LEASE_TOKEN.to_python(token) if token else None
    return _Enrollment(state, token, step_id, sequence, exit_reason, journey_state, exit_pending)


_LEASE_TOKEN = Enrollment._meta.get_field("lease_token")


def _why_left(enrollment):
    reason = enrollment.exit_reason or enrollment.get_state_display().lower()
    return f"Left the journey ({reason}) before it was sent."
