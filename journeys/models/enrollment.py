from django.db import models
from django.db.models import Q

from contacts.models import Contact
from journeys.models.journey import Journey
from journeys.models.steps import Step
from messaging.models import Message


class Enrollment(models.Model):
    """One contact's passage through one journey.

    `next_run_at` is when the scheduler should advance it next; a claim sets
    `lease_token` and `locked_until`, and only the holder of the token may
    change the enrollment until the lease expires.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        WAITING = "waiting", "Waiting"
        COMPLETED = "completed", "Completed"
        EXITED = "exited", "Exited"
        FAILED = "failed", "Failed"

    OPEN_STATES = (State.ACTIVE, State.WAITING)

    class ExitKind(models.TextChoices):
        """Why an exited passage left, as journey analytics counts it (the
        `exited:<kind>` tallies); `exit_reason` says it in words."""

        EXIT_EVENT = "exit_event", "Exit event"
        AUDIENCE = "audience", "Left the audience"
        ARCHIVED = "archived", "Journey archived"
        ADMIN = "admin", "Exited by staff"
        FORGOTTEN = "forgotten", "Contact forgotten"
        HOLDOUT = "holdout", "Held out (control group)"
        OTHER = "other", "Other"

    # No index of their own: (journey, state) and (contact, state) below lead
    # with them, and every index is one more write for each move of the engine.
    journey = models.ForeignKey(
        Journey, on_delete=models.CASCADE, related_name="enrollments", db_index=False
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="enrollments", db_index=False
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    # RESTRICT: a step with contacts on it cannot be deleted out from under
    # them (deleting the whole journey still cascades).
    current_step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.RESTRICT, related_name="enrollments"
    )
    # Counts the steps taken; part of every message's idempotency key, so a
    # journey that loops back to a step sends again while a retry does not.
    sequence = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Failed tries of the current step."
    )
    next_run_at = models.DateTimeField(null=True, blank=True)
    # Waiting for an event (journeys.models.WaitForEventStep): its name, the
    # key of its data that must hold `wait_value` (a correlation key, or the
    # message id of an engagement; "" for none), since when it counts, and the
    # timeout. An event that comes is noted as a Wakeup, not here.
    wait_event_name = models.CharField(max_length=255, blank=True)
    wait_key = models.CharField(max_length=255, blank=True, default="", db_default="")
    wait_value = models.CharField(max_length=500, blank=True, default="", db_default="")
    wait_since = models.DateTimeField(null=True, blank=True)
    wait_timeout_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    trigger_data = models.JSONField(default=dict, blank=True)
    # Entered a journey whose re-entry policy is "always": it may run
    # alongside other open passages of the same contact, so the one-open
    # constraint leaves it out. Fixed at entry.
    parallel = models.BooleanField(default=False, db_default=False, editable=False)
    entered_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=255, blank=True)
    # Set with exit_reason whenever a passage exits (blank otherwise).
    exit_kind = models.CharField(
        max_length=16, choices=ExitKind.choices, blank=True, default="", db_default=""
    )
    goal_reached_at = models.DateTimeField(null=True, blank=True)
    # Left at a holdout step: the control group the journey's lift is measured against.
    holdout = models.BooleanField(default=False, db_default=False)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-entered_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["journey", "contact"],
                condition=Q(state__in=["active", "waiting"], parallel=False),
                name="one_open_enrollment_per_journey",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_run_at"],
                condition=Q(state__in=["active", "waiting"]),
                name="enrollment_due",
            ),
            models.Index(fields=["journey", "state"], name="enrollment_journey_state"),
            models.Index(fields=["contact", "state"], name="enrollment_contact_state"),
            # Events wake the enrollments waiting for them by contact and name
            # (journeys.services.entry._wake_waiting): only those rows, indexed.
            models.Index(
                fields=["contact", "wait_event_name"],
                condition=Q(state="waiting") & ~Q(wait_event_name=""),
                name="enrollment_waiting_for_event",
            ),
            # The admin's failed enrollments, newest first (the state filter and
            # "needs attention"): a few rows in a thousand, so the index is small
            # and only a move into or out of "failed" writes to it.
            models.Index(fields=["id"], condition=Q(state="failed"), name="enrollment_failed"),
        ]

    def __str__(self):
        return f"{self.contact} in {self.journey} ({self.state})"

    @property
    def is_open(self):
        return self.state in self.OPEN_STATES


class Wakeup(models.Model):
    """An event that came for an enrollment waiting for it, until its wait step reads it.

    The event dispatcher inserts one narrow row per enrollment it wakes
    (journeys.services.entry._wake_waiting) rather than rewriting the wide,
    much-indexed enrollment row; the scheduler claims woken enrollments
    through this table, and the wait step deletes the row when it runs, in
    the transaction that moves the enrollment on. One row per enrollment:
    a second event before the step runs adds nothing (the step looks for
    any matching event since the wait began should the first not match).
    """

    enrollment = models.OneToOneField(
        Enrollment, primary_key=True, on_delete=models.CASCADE, related_name="wakeup"
    )
    event_id = models.BigIntegerField()
    # Indexed: the scheduler claims the oldest wake-ups first and stops at a
    # batch, however many are waiting to be claimed.
    woken_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"enrollment {self.enrollment_id} woken by event {self.event_id}"


class StepRun(models.Model):
    """One execution of one step for one enrollment: audit trail and metrics."""

    class Outcome(models.TextChoices):
        CONTINUED = "continued", "Continued"
        WAITING = "waiting", "Waiting"
        RETRY = "retry", "Will retry"
        COMPLETED = "completed", "Completed the journey"
        EXITED = "exited", "Exited"
        FAILED = "failed", "Failed"

    # Indexed by (enrollment, sequence) and (step, outcome) below, not alone:
    # step runs are the engine's most written rows.
    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.CASCADE, related_name="step_runs", db_index=False
    )
    step = models.ForeignKey(
        Step, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs", db_index=False
    )
    sequence = models.PositiveIntegerField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    branch = models.CharField(max_length=32, blank=True)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="step_runs"
    )
    detail = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["step", "outcome"], name="steprun_step_outcome"),
            models.Index(fields=["enrollment", "sequence"], name="steprun_enrollment_seq"),
        ]

    def __str__(self):
        return f"{self.step} → {self.outcome}"
