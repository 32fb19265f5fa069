from django.conf import settings
from django.db import models

# Folders nest: "Onboarding/Trials" is the folder Trials inside Onboarding.
FOLDER_SEPARATOR = "/"


def folder_parts(folder: str) -> list[str]:
    """ "Onboarding / Trials/" -> ["Onboarding", "Trials"]: blank parts dropped."""
    return [part.strip() for part in (folder or "").split(FOLDER_SEPARATOR) if part.strip()]


class Journey(models.Model):
    """A multi-step path contacts take after an entry trigger fires."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        LIVE = "live", "Live"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    class Reentry(models.TextChoices):
        NEVER = "never", "Never: a contact takes this journey once"
        AFTER_EXIT = "after_exit", "After finishing: once the previous passage has ended"
        ALWAYS = "always", "Always: every trigger starts a passage, even alongside an open one"
        PERIOD = "period", "At most once per period (and never two passages at once)"

    name = models.CharField(max_length=200, unique=True)
    folder = models.CharField(
        max_length=200,
        blank=True,
        db_index=True,
        help_text="Where the journey is filed in the list. Folders nest with “/”, "
        "e.g. Onboarding/Trials.",
    )
    description = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    reentry = models.CharField(
        "re-entry", max_length=16, choices=Reentry.choices, default=Reentry.NEVER
    )
    reentry_period_days = models.PositiveIntegerField(
        "re-entry period (days)",
        null=True,
        blank=True,
        help_text="For “at most once per period”: days from one entry before the next may start.",
    )
    audience = models.JSONField(
        default=dict,
        blank=True,
        help_text="Optional condition tree (as a segment's conditions): only contacts who match "
        "enter, and a contact in the journey who stops matching leaves it. Empty: everyone.",
    )
    exit_event_name = models.CharField(
        max_length=255,
        blank=True,
        help_text="Contacts still in the journey leave it when an event of this name is tracked.",
    )
    goal_event_name = models.CharField(
        max_length=255,
        blank=True,
        help_text="An event of this name within the conversion window counts as reaching "
        "the journey's goal (a conversion).",
    )
    goal_window_days = models.PositiveSmallIntegerField(
        "conversion window (days)",
        default=30,
        help_text="Days after entering during which the goal event counts as a conversion, "
        "for contacts still in the journey, those who finished it, and its holdout alike.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    modified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["folder", "name"]
        permissions = [
            ("activate_journey", "Can go live with, pause and archive journeys"),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        from contacts.conditions import ConditionError, compile_conditions

        errors = {}
        # One spelling per folder, so the list's folders group what belongs together.
        self.folder = FOLDER_SEPARATOR.join(folder_parts(self.folder))
        if self.audience is None:  # emptied in a form
            self.audience = {}
        try:
            compile_conditions(self.audience)
        except ConditionError as exc:
            errors["audience"] = f"Not a condition tree: {exc}."
        if self.reentry == self.Reentry.PERIOD and not self.reentry_period_days:
            errors["reentry_period_days"] = "Say how many days must pass between two entries."
        if errors:
            raise ValidationError(errors)

    @property
    def parallel(self) -> bool:
        """Whether its passages may run side by side for one contact."""
        return self.reentry == self.Reentry.ALWAYS
