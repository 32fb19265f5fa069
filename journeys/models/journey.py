from django.conf import settings
from django.db import models


class Journey(models.Model):
    """A multi-step path contacts take after an entry trigger fires."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        LIVE = "live", "Live"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    class Trigger(models.TextChoices):
        EVENT = "event", "An event is tracked"
        LIST_JOIN = "list_join", "A contact joins a list"

    class Reentry(models.TextChoices):
        NEVER = "never", "Never: a contact takes this journey once"
        AFTER_EXIT = "after_exit", "After finishing: once the previous passage has ended"

    name = models.CharField(max_length=200, unique=True)
    folder = models.CharField(max_length=200, blank=True, db_index=True)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    trigger_type = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.EVENT)
    trigger_event_name = models.CharField(
        max_length=255,
        blank=True,
        help_text="Contacts enter when an event of this name is tracked.",
    )
    trigger_list = models.ForeignKey(
        "contacts.ContactList",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Contacts enter when they join this list (for “A contact joins a list”).",
    )
    reentry = models.CharField(
        "re-entry", max_length=16, choices=Reentry.choices, default=Reentry.NEVER
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
        indexes = [
            models.Index(
                fields=["state", "trigger_type", "trigger_event_name"], name="journey_trigger"
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        if self.trigger_type == self.Trigger.EVENT and not self.trigger_event_name:
            raise ValidationError(
                {"trigger_event_name": "Name the event that starts this journey."}
            )
