"""What every step type shares: the Step model, its labelled connections,
the stable draw splits and holdouts use, and the retries of steps that
call the outside world."""

import hashlib
from collections import Counter
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from polymorphic.models import PolymorphicModel

from journeys.models.journey import Journey
from journeys.outcomes import RetryAt


class Step(PolymorphicModel):
    """One box on a journey's diagram."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="steps")
    key = models.SlugField(
        max_length=64, help_text="Short name, unique within the journey (used in metrics and logs)."
    )
    name = models.CharField(max_length=200, blank=True)
    position = models.PositiveIntegerField(default=0, help_text="Order on the diagram.")

    # True for steps whose execute() talks to the outside world (sends,
    # webhooks): the runner commits before them and runs them outside any
    # transaction. Steps that only read and write the database leave it False.
    performs_io = False
    # For the checks before going live (journeys.services.validation): whether
    # a contact waits here (a loop through such a step is not a runaway) and
    # whether it goes on from here at all.
    waits = False
    continues = True

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["journey", "key"], name="step_key_unique_in_journey"),
        ]

    def __str__(self):
        return f"{self.position}. {self.name or self.key}"

    def execute(self, run):
        raise NotImplementedError(f"{type(self).__name__} must implement execute()")

    def connection_labels(self) -> tuple[str, ...]:
        """The labels of this step's outgoing connections, in the order the
        diagram and the admin show them: "next" for a step that goes on one
        way, a branch per label for one that chooses (yes/no, a split's
        branches, a wait's timeout)."""
        return (NEXT,) if self.continues else ()

    def execute_many(self, runs):
        """execute() for each of `runs` (every contact at this step in one
        batch), in order: their outcomes.

        The runner calls this, not execute(), so a step whose execute() costs
        queries overrides it with a set-based version (a few statements for
        the whole batch). Should it raise, the runner runs each contact alone
        through execute(), so one contact's error fails only that contact.
        """
        return [self.execute(run) for run in runs]

    @classmethod
    def admin_connection_labels(cls) -> tuple[str, ...]:
        """Every label a step of this type can have (the admin offers a field
        for each); a split's own settings say which of them it uses."""
        return cls().connection_labels()


NEXT = "next"


class Connection(models.Model):
    """An arrow on the journey's diagram: from `step`, on `label`, to `target`.

    A step has at most one connection per label. A label with no connection
    goes to the next step by position (or ends the journey after the last),
    so a journey of steps in a row needs no connections at all.
    """

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="connections")
    label = models.CharField(max_length=32, default=NEXT)
    # Deleting the target removes the arrow: its label then falls through to
    # the next step by position, as an empty choice does.
    target = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="incoming")

    class Meta:
        ordering = ["step", "label"]
        constraints = [
            models.UniqueConstraint(fields=["step", "label"], name="connection_label_unique"),
            models.CheckConstraint(
                condition=~models.Q(step=models.F("target")), name="connection_not_to_itself"
            ),
        ]

    def __str__(self):
        return f"{self.step_id} —{self.label}→ {self.target_id}"

    def clean(self):
        if self.step_id and self.target_id:
            if self.step_id == self.target_id:
                raise ValidationError({"target": "A step cannot lead to itself."})
            if self.target.journey_id != self.step.journey_id:
                raise ValidationError({"target": "Choose a step of the same journey."})


def stable_share(*parts) -> float:
    """A number in [0, 1) that the same parts always give: which branch of a
    random split, or whether in a holdout, a contact falls in, the same on
    every pass and every worker."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# Retries of steps that call the outside world (webhooks, notes to staff).
CALL_RETRY_BASE = timedelta(minutes=1)
# A batch stops calling out after a third of its lease has gone (a slow URL
# times 500 contacts): the rest are called on the next pass, not counted as
# tries, before the lease could run out and a second worker call them too.
NOT_CALLED_YET = "not called yet: this batch ran out of time; on the next pass"


def tries_so_far(step, runs) -> dict:
    """How many times `step` already ran and asked to be run again, per run
    (counted in the step-run trail of this visit to the step), in one query."""
    from journeys.models.enrollment import StepRun

    rows = (
        StepRun.objects.filter(
            step_id=step.pk,
            outcome=StepRun.Outcome.RETRY,
            enrollment_id__in=[run.enrollment.pk for run in runs],
        )
        .exclude(detail=NOT_CALLED_YET)
        .values_list("enrollment_id", "sequence")
    )
    counts = Counter(rows)
    return {run.enrollment.pk: counts[(run.enrollment.pk, run.enrollment.sequence)] for run in runs}


def retry_or_fail(run, *, tries, retries, detail, failed):
    """RetryAt while retries remain, else what `failed(detail)` makes of it."""
    if tries < retries:
        at = run.now + CALL_RETRY_BASE * (4**tries)
        return RetryAt(
            at=at,
            detail=f"try {tries + 1} of {retries + 1} failed: {detail}; again at "
            f"{at.isoformat(timespec='seconds')}",
        )
    return failed(f"failed after {tries + 1} tries: {detail}" if tries else f"failed: {detail}")
