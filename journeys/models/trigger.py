from django.core.exceptions import ValidationError
from django.db import models

from journeys.models.journey import Journey


class JourneyTrigger(models.Model):
    """One way contacts enter a journey. A journey may have several; a contact
    who sets off any of them enters (as the journey's audience and re-entry
    policy allow).

    Which fields matter depends on `kind`; clean() says what each needs.
    """

    class Kind(models.TextChoices):
        EVENT = "event", "An event is tracked"
        LIST_JOIN = "list_join", "A contact joins a list"
        SEGMENT_ENTRY = "segment_entry", "A contact enters a segment"
        API = "api", "The API starts it (triggerWorkflow)"
        SCHEDULE = "schedule", "On a schedule, for a list or a segment"
        DATE_ATTRIBUTE = "date_attribute", "On a date held in the contact's attributes"
        JOURNEY = "journey", "Another journey starts it"
        SUBSCRIPTION = "subscription", "A subscription changes"

    class Unit(models.TextChoices):
        DAYS = "days", "days"
        WEEKS = "weeks", "weeks"

    class Change(models.TextChoices):
        SUBSCRIBED = "subscribed", "subscribes"
        UNSUBSCRIBED = "unsubscribed", "unsubscribes"

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="triggers")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.EVENT)
    event_name = models.CharField(
        max_length=255, blank=True, help_text="Event: contacts enter when it is tracked."
    )
    event_filter = models.JSONField(
        default=dict,
        blank=True,
        help_text='Event: only events whose data hold these values, e.g. {"plan": "pro", '
        '"address.city": "Oslo"} (dotted paths reach into nested data). Empty: any.',
    )
    contact_list = models.ForeignKey(
        "contacts.ContactList",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="List join: the list they join. Schedule: whose members enter.",
    )
    segment = models.ForeignKey(
        "contacts.Segment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Segment entry: contacts who newly match it enter. Schedule: who enters.",
    )
    starts_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Schedule: when it runs (the first time, if it repeats). With a local time "
        "of day, only its date counts.",
    )
    every = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Schedule: repeat every so many days or weeks; empty: once.",
    )
    every_unit = models.CharField(max_length=8, choices=Unit.choices, default=Unit.DAYS, blank=True)
    at_local_time = models.TimeField(
        null=True,
        blank=True,
        help_text="Schedule, date attribute: the time of day in each contact's own time zone "
        "(date attribute: midnight when empty).",
    )
    date_attribute = models.CharField(
        max_length=255,
        blank=True,
        help_text="Date attribute: the attribute path holding a date (YYYY-MM-DD), e.g. birthday.",
    )
    offset_days = models.IntegerField(
        default=0, help_text="Date attribute: days after (or, negative, before) the date."
    )
    yearly = models.BooleanField(
        default=True,
        help_text="Date attribute: every year on that day (birthday, anniversary); "
        "off: once, on the date itself (renewal).",
    )
    source_journey = models.ForeignKey(
        Journey,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Another journey: only this one may start it (its start journey step); "
        "empty: any journey.",
    )
    channel = models.ForeignKey(
        "subscriptions.Channel",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Subscription change: a change to this whole channel…",
    )
    message_type = models.ForeignKey(
        "subscriptions.MessageType",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="…or to this message type.",
    )
    subscription_change = models.CharField(
        max_length=16, choices=Change.choices, blank=True, help_text="Subscription change: which."
    )
    # Schedules, date attributes and segment entries: how far the scheduler has
    # fired this trigger. Moved in the transaction that enrolls, so a pass
    # repeated (or run by a second scheduler) enrolls no one twice.
    fired_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["journey", "id"]
        indexes = [
            models.Index(fields=["kind", "event_name"], name="trigger_kind_event"),
        ]

    def __str__(self):
        return self.summary

    @property
    def summary(self) -> str:
        kind = self.Kind
        if self.kind == kind.EVENT:
            extra = f" with {self.event_filter}" if self.event_filter else ""
            return f"event “{self.event_name}”{extra}"
        if self.kind == kind.LIST_JOIN:
            return f"joins “{self.contact_list}”" if self.contact_list_id else "joins a list"
        if self.kind == kind.SEGMENT_ENTRY:
            return f"enters “{self.segment}”" if self.segment_id else "enters a segment"
        if self.kind == kind.SCHEDULE:
            who = self.contact_list or self.segment
            every = f", every {self.every} {self.every_unit}" if self.every else ""
            return f"schedule for “{who}”{every}"
        if self.kind == kind.DATE_ATTRIBUTE:
            return f"date “{self.date_attribute}” {self.offset_days:+d} days"
        if self.kind == kind.JOURNEY:
            return (
                f"started by “{self.source_journey}”"
                if self.source_journey_id
                else ("started by another journey")
            )
        if self.kind == kind.SUBSCRIPTION:
            scope = self.message_type or self.channel
            return f"{self.get_subscription_change_display()} “{scope}”"
        return self.get_kind_display()

    def clean(self):
        from contacts.conditions import ConditionError, validate_attribute_path

        errors = {}
        kind = self.Kind
        if self.event_filter is None:  # emptied in a form
            self.event_filter = {}

        def need(field, message):
            if not getattr(self, field):
                errors[field.removesuffix("_id")] = message

        if self.kind == kind.EVENT:
            need("event_name", "Name the event that starts this journey.")
            if not isinstance(self.event_filter, dict):
                errors["event_filter"] = (
                    'The filter is an object of path: value, e.g. {"plan": "pro"}.'
                )
            else:
                for path in self.event_filter:
                    try:
                        validate_attribute_path(path)
                    except ConditionError as exc:
                        errors["event_filter"] = str(exc)
        elif self.kind == kind.LIST_JOIN:
            need("contact_list_id", "Choose the list.")
        elif self.kind == kind.SEGMENT_ENTRY:
            need("segment_id", "Choose the segment.")
        elif self.kind == kind.SCHEDULE:
            need("starts_at", "Say when it runs.")
            if bool(self.contact_list_id) == bool(self.segment_id):
                errors["contact_list"] = "A schedule runs for one list or one segment: choose one."
        elif self.kind == kind.DATE_ATTRIBUTE:
            try:
                validate_attribute_path(self.date_attribute)
            except ConditionError as exc:
                errors["date_attribute"] = str(exc)
        elif self.kind == kind.SUBSCRIPTION:
            if bool(self.channel_id) == bool(self.message_type_id):
                errors["channel"] = "Choose a channel or a message type (one of them)."
            need("subscription_change", "Say whether subscribing or unsubscribing starts it.")
        if self.kind == kind.JOURNEY and self.source_journey_id == self.journey_id:
            errors["source_journey"] = "A journey cannot start itself."
        if errors:
            raise ValidationError(errors)


class TriggerMembership(models.Model):
    """Who matched a segment-entry trigger's segment at its last refresh: the
    scheduler compares the segment with this to find who newly entered."""

    trigger = models.ForeignKey(JourneyTrigger, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trigger", "contact"], name="trigger_member_once"),
        ]

    def __str__(self):
        return f"{self.contact_id} in the segment of trigger {self.trigger_id}"
