"""Steps that hold the contact: a delay, a wait for an event."""

from datetime import date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.db import models

from contacts.conditions import (
    ConditionError,
    attribute_value,
    validate_attribute_path,
)
from contacts.models import Event
from journeys.models.steps.base import Step
from journeys.models.steps.messages import SendMessageStep
from journeys.outcomes import (
    Continue,
    WaitForEvent,
    WaitUntil,
)
from messaging.models import Message
from messaging.services.engagement import engagement_event_name


class DelayStep(Step):
    """Wait before going on: for a time; until a time of day on chosen
    weekdays; or until a date in the contact's profile, plus or minus days.

    Times of day are the contact's own (their time zone, else TIME_ZONE). A
    date that is missing, unreadable or already past lets the contact go on
    at once: the step says why in its run's detail.
    """

    waits = True

    class Unit(models.TextChoices):
        MINUTES = "minutes", "minutes"
        HOURS = "hours", "hours"
        DAYS = "days", "days"
        WEEKS = "weeks", "weeks"

    class Until(models.TextChoices):
        DURATION = "duration", "For a time (amount and unit)"
        TIME_OF_DAY = "time_of_day", "Until a time of day, on the chosen weekdays"
        DATE_ATTRIBUTE = "date_attribute", "Until a date in the contact's profile, ± days"

    ALL_WEEKDAYS = "0123456"
    DEFAULT_TIME = time(9, 0)

    wait_until = models.CharField(max_length=16, choices=Until.choices, default=Until.DURATION)
    amount = models.PositiveIntegerField(default=1)
    unit = models.CharField(max_length=8, choices=Unit.choices, default=Unit.DAYS)
    at_time = models.TimeField(
        null=True,
        blank=True,
        help_text="The contact's local time of day (their time zone). For a date: 09:00 if empty.",
    )
    weekdays = models.CharField(
        max_length=7,
        default=ALL_WEEKDAYS,
        blank=True,
        help_text="Days it may be, as digits: 0 Monday … 6 Sunday (01234: weekdays only).",
    )
    date_attribute = models.CharField(
        max_length=255,
        blank=True,
        help_text='Attribute holding a date, e.g. "renewal_date" (2027-03-01 or a full time).',
    )
    offset_days = models.IntegerField(
        default=0, help_text="Days after the date (negative: before it)."
    )

    class Meta:
        verbose_name = "delay step"

    @property
    def duration(self):
        return timedelta(**{self.unit: self.amount})

    def clean(self):
        super().clean()
        if self.wait_until == self.Until.TIME_OF_DAY:
            if self.at_time is None:
                raise ValidationError({"at_time": "Give the time of day to wait for."})
            if not self.weekdays or set(self.weekdays) - set(self.ALL_WEEKDAYS):
                raise ValidationError(
                    {"weekdays": "Give the allowed days as digits 0 (Monday) to 6 (Sunday)."}
                )
        elif self.wait_until == self.Until.DATE_ATTRIBUTE:
            try:
                validate_attribute_path(self.date_attribute)
            except ConditionError as exc:
                raise ValidationError({"date_attribute": str(exc)}) from exc

    def execute(self, run):
        next_step = run.following(self)
        if self.wait_until == self.Until.TIME_OF_DAY:
            at = self._next_time_of_day(run.now, run.contact.zone)
            return WaitUntil(at=at, next_step=next_step, detail=f"until {at.isoformat()}")
        if self.wait_until == self.Until.DATE_ATTRIBUTE:
            at, why = self._date_from_profile(run.contact, run.now)
            if at is None:
                return Continue(next_step, detail=why)
            return WaitUntil(at=at, next_step=next_step, detail=f"until {at.isoformat()}")
        return WaitUntil(
            at=run.now + self.duration,
            next_step=next_step,
            detail=f"{self.amount} {self.unit}",
        )

    def _next_time_of_day(self, now, zone):
        local = now.astimezone(zone)
        for days in range(8):
            day = local.date() + timedelta(days=days)
            at = datetime.combine(day, self.at_time, tzinfo=zone)
            if at > local and str(day.weekday()) in (self.weekdays or self.ALL_WEEKDAYS):
                return at
        raise AssertionError("a week always holds an allowed day")  # clean() guarantees it

    def _date_from_profile(self, contact, now):
        raw = attribute_value(contact.attributes, self.date_attribute)
        try:
            day = date.fromisoformat(str(raw)[:10])
        except ValueError:
            return None, f"no date in {self.date_attribute!r}: went on at once"
        day += timedelta(days=self.offset_days)
        at = datetime.combine(day, self.at_time or self.DEFAULT_TIME, tzinfo=contact.zone)
        if at <= now:
            return None, f"{day.isoformat()} has passed: went on at once"
        return at, ""


class WaitForEventStep(Step):
    """Wait until the contact does an event, then go down `event`; if it does
    not come in time, go down `timeout`.

    The event is named, optionally with data it must hold (`data_filter`, e.g.
    {"plan": "pro"}), and optionally correlated with the event that started
    the journey: with `correlation_key` "cartId", only an event whose cartId
    is the triggering event's counts. Or it is an engagement with a message
    an earlier send step of this journey sent this contact (opened, clicked).
    Only events received after the contact reached this step count. Events
    wake waiting contacts set-based, as they are dispatched (one statement
    per batch, by contact); the step then checks the data filter, and a
    contact woken by an event that does not pass it waits on.
    """

    waits = True

    class Engagement(models.TextChoices):
        NONE = "", "No: wait for the named event"
        OPENED = "opened", "Opened the message of the chosen send step"
        CLICKED = "clicked", "Clicked in the message of the chosen send step"

    event_name = models.CharField(
        max_length=255, blank=True, help_text="The event to wait for, e.g. “purchase”."
    )
    data_filter = models.JSONField(
        default=dict,
        blank=True,
        help_text='Values the event\'s data must hold, e.g. {"plan": "pro"} (empty: any).',
    )
    correlation_key = models.CharField(
        max_length=255,
        blank=True,
        help_text="A key of the event data that must equal the triggering event's, "
        "e.g. “cartId” (empty: any).",
    )
    engagement = models.CharField(
        max_length=16, choices=Engagement.choices, default=Engagement.NONE, blank=True
    )
    engagement_step = models.ForeignKey(
        Step,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="For an engagement: the send step whose message it is.",
    )
    timeout_amount = models.PositiveIntegerField(default=3)
    timeout_unit = models.CharField(
        max_length=8, choices=DelayStep.Unit.choices, default=DelayStep.Unit.DAYS
    )

    class Meta:
        verbose_name = "wait for event step"

    EVENT, TIMEOUT = "event", "timeout"

    def connection_labels(self):
        return (self.EVENT, self.TIMEOUT)

    @property
    def timeout(self):
        return timedelta(**{self.timeout_unit: self.timeout_amount})

    def clean(self):
        super().clean()
        if self.engagement:
            step = self.engagement_step
            if not isinstance(step, SendMessageStep) or step.journey_id != self.journey_id:
                raise ValidationError({"engagement_step": "Choose a send step of this journey."})
        elif not self.event_name:
            raise ValidationError({"event_name": "Name the event to wait for."})
        if not isinstance(self.data_filter, dict):
            raise ValidationError({"data_filter": 'Give an object, e.g. {"plan": "pro"}.'})
        if self.correlation_key and ("." in self.correlation_key or "'" in self.correlation_key):
            raise ValidationError({"correlation_key": "Give a key of the event data, e.g. cartId."})
        if not self.timeout_amount:
            raise ValidationError({"timeout_amount": "Give how long to wait."})

    def execute_many(self, runs):
        # The events that woke these contacts, read and cleared for all at once.
        woken = _wakeups_take([run.enrollment.pk for run in runs])
        events = Event.objects.in_bulk(set(woken.values())) if woken else {}
        return [self._execute(run, events.get(woken.get(run.enrollment.pk))) for run in runs]

    def execute(self, run):
        woken = _wakeups_take([run.enrollment.pk])
        return self._execute(run, Event.objects.filter(pk__in=woken.values()).first())

    def _execute(self, run, woken_by):
        e = run.enrollment
        if e.wait_event_name and e.wait_since:
            return self._resume(run, woken_by)
        since = e.next_run_at or run.now
        timeout_at = since + self.timeout
        name, key, value, why_not = self._expected(run)
        if why_not:
            return Continue(run.following(self, self.TIMEOUT), branch=self.TIMEOUT, detail=why_not)
        # An event received since the contact reached this step may have been
        # dispatched before this wait was recorded: look for it here.
        for event in self._received(run.contact.pk, name, key, value, since):
            if self._passes_filter(event):
                return self._came(run, event)
        return WaitForEvent(
            event_name=name, key=key, value=value, since=since, timeout_at=timeout_at,
            detail=f"waiting for {name} until {timeout_at.isoformat()}",
        )  # fmt: skip

    def _resume(self, run, woken_by):
        e = run.enrollment
        if woken_by is not None:
            if (
                woken_by.contact_id == run.contact.pk
                and woken_by.received_at >= e.wait_since
                and self._passes_filter(woken_by)
            ):
                return self._came(run, woken_by)
            # Only the first event to wake a contact is noted: a later one
            # may pass the filter where that one did not.
            received = self._received(
                run.contact.pk, e.wait_event_name, e.wait_key, e.wait_value, e.wait_since
            )
            for event in received:
                if self._passes_filter(event):
                    return self._came(run, event)
        if run.now >= e.wait_timeout_at:
            return Continue(
                run.following(self, self.TIMEOUT),
                branch=self.TIMEOUT,
                detail=f"no {e.wait_event_name} in time",
            )
        # Woken by an event that did not pass the filter: wait on.
        why = f"event {woken_by.pk} did not match" if woken_by else "not due"
        return WaitForEvent(
            event_name=e.wait_event_name, key=e.wait_key, value=e.wait_value,
            since=e.wait_since, timeout_at=e.wait_timeout_at, detail=f"{why}: waiting on",
        )  # fmt: skip

    def _came(self, run, event):
        return Continue(
            run.following(self, self.EVENT), branch=self.EVENT, detail=f"{event.name} {event.pk}"
        )

    def _expected(self, run):
        """(event name, data key, value it must hold, why the wait is pointless)."""
        if self.engagement:
            kind = "opened" if self.engagement == self.Engagement.OPENED else "clicked"
            # The send step's message to this contact on this passage (its
            # step run may not be written yet: it commits with the batch).
            sent = (
                Message.objects.filter(
                    contact_id=run.contact.pk,
                    origin=Message.Origin.JOURNEY,
                    origin_id=run.enrollment.pk,
                    template_id=getattr(run.step(self.engagement_step_id), "template_id", None),
                    sent_at__isnull=False,
                )
                .order_by("-pk")
                .values_list("pk", "medium")
                .first()
            )
            if sent is None:
                return "", "", "", f"step {self.engagement_step_id} sent this contact nothing"
            return engagement_event_name(sent[1], kind), "messageId", str(sent[0]), ""
        if self.correlation_key:
            value = (run.enrollment.trigger_data or {}).get(self.correlation_key)
            if value is None or isinstance(value, dict | list):
                return "", "", "", f"the trigger has no {self.correlation_key} to match"
            return self.event_name, self.correlation_key, _as_text(value), ""
        return self.event_name, "", "", ""

    @staticmethod
    def _received(contact_id, name, key, value, since):
        events = Event.objects.filter(contact_id=contact_id, name=name, received_at__gte=since)
        if key:
            events = [e for e in events if _as_text((e.data or {}).get(key)) == value]
        return events

    def _passes_filter(self, event):
        data = event.data or {}
        return all(data.get(k) == v for k, v in (self.data_filter or {}).items())


def _wakeups_take(enrollment_ids) -> dict:
    """{enrollment id: the event that woke it} for these enrollments, whose
    wake-ups are deleted: they commit or roll back with the step's moves."""
    # Imported here: the enrollment module imports the step types.
    from journeys.models.enrollment import Wakeup

    taken = Wakeup.objects.filter(enrollment_id__in=enrollment_ids)
    woken = dict(taken.values_list("enrollment_id", "event_id"))
    if woken:
        taken.delete()
    return woken


def _as_text(value):
    """A correlation value as the database reads it from JSON (->>): text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
