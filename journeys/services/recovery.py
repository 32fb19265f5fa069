"""Staff putting failed enrollments back on the step that failed.

A step that keeps raising is tried a few times (journeys.services.runner),
then its enrollment is marked failed with the error in `last_error`, and the
contact stays on that step while everyone else carries on. Once the cause is
fixed (a template, a condition, an outside service), staff retry the step.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from journeys.models import Enrollment, Journey

State = Enrollment.State


class RetryError(ValueError):
    pass


@dataclass(frozen=True)
class RetryFailed:
    retried: int
    # Chosen but not retried: not failed, their journey archived, or their
    # contact already back in the journey.
    refused: int


def enrollments_retry_failed(*, enrollments: QuerySet, now: datetime | None = None) -> RetryFailed:
    """Put failed enrollments back on their failed step, due now, tries counted from zero.

    The next scheduler pass runs the step again (a paused journey's, when
    it goes live). The step counter stays, so a send step that failed after
    its message was recorded finds that message rather than sending again.
    Left failed: an enrollment of an archived journey, and one whose contact
    has entered the journey again since (a contact passes through a journey
    once at a time).
    """
    now = now or timezone.now()
    in_journey_again = Enrollment.objects.filter(
        journey_id=OuterRef("journey_id"),
        contact_id=OuterRef("contact_id"),
        state__in=Enrollment.OPEN_STATES,
    )
    try:
        with transaction.atomic():
            chosen = enrollments.count()
            retried = (
                enrollments.filter(state=State.FAILED, current_step__isnull=False)
                .exclude(journey__state=Journey.State.ARCHIVED)
                .exclude(Exists(in_journey_again))
                .update(
                    state=State.ACTIVE,
                    attempts=0,
                    next_run_at=now,
                    finished_at=None,
                    locked_until=None,
                    lease_token=None,
                )
            )
    except IntegrityError as exc:
        # A contact entered the journey again between the check and the update.
        raise RetryError(
            "A contact re-entered the journey meanwhile; nothing was retried. Try again."
        ) from exc
    return RetryFailed(retried=retried, refused=chosen - retried)
