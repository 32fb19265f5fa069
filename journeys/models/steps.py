"""Step types. Each implements execute() for its own behaviour only.

execute(run) reads the step's configuration, calls other apps' services and
returns an outcome (journeys.outcomes). It never locks, commits, retries or
enqueues: journeys.services.runner does that for every step type alike.
`run` is a journeys.services.runner.StepContext. The runner calls
execute_many(runs) with every contact at the step in a batch; by default it
calls execute() for each, and a step whose execute() costs queries overrides
it to do the same work set-based.
"""

import copy
import hashlib
import re
from collections import Counter
from datetime import date, datetime, time, timedelta
from time import monotonic

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import MaxValueValidator, MinValueValidator, validate_email
from django.db import DataError, models, transaction
from django.urls import reverse
from django.utils import timezone
from polymorphic.models import PolymorphicModel

from contacts.conditions import (
    ATTRIBUTE_OPERATORS,
    VALUELESS_OPERATORS,
    ConditionError,
    attribute_matches,
    attribute_value,
    conditions_validate,
    contact_matches,
    contacts_matching,
    parse_value,
    validate_attribute_path,
)
from contacts.models import ContactList, Event, ListMembership
from contacts.services.lists import memberships_add
from contacts.services.users import UserError, UserUpdate, users_update
from contacts.sql import update_from_values
from journeys.models.journey import Journey
from journeys.outcomes import (
    Abandoned,
    Complete,
    Continue,
    Holdout,
    RetryAt,
    WaitForEvent,
    WaitUntil,
)
from journeys.services.webhooks import (
    deep_merge,
    is_missing,
    json_path_value,
    nested,
    webhook_call,
)
from messaging.backends.safehttp import CheckedSession
from messaging.backends.webhook import USER_AGENT, render_body, signature_headers, url_problem
from messaging.context import message_context
from messaging.models import Message, Template
from messaging.rendering import RenderError, TemplateSyntaxProblem, check_syntax, render_string
from messaging.services import SendRequest, messages_send
from messaging.services.engagement import engagement_event_name
from subscriptions.models import Channel, ConsentSource, MessageType, Subscription
from subscriptions.services import subscription_set


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


class SendMessageStep(Step):
    """Send a template to the contact, on whatever channel its message type is on.

    Consent is checked when the message goes out, not at entry, and a
    journey paused in the meantime holds the contact here until it goes live
    again. Whatever the send's outcome (sent, skipped, failed, or left to
    messaging's own retries), the contact goes on; the outcome is on the
    Message. Contacts at this step in one batch are sent to together.
    """

    performs_io = True

    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = "send message step"

    def execute(self, run):
        (outcome,) = self.execute_many([run])
        return outcome

    def execute_many(self, runs):
        results = messages_send(
            [
                SendRequest(
                    contact=run.contact,
                    template=self.template,
                    idempotency_key=run.idempotency_key,
                    origin=Message.Origin.JOURNEY,
                    origin_id=run.enrollment.pk,
                    context=run.template_context(),
                    hold=run.send_hold,
                )
                for run in runs
            ]
        )
        outcomes = []
        for run, result in zip(runs, results, strict=True):
            if result.abandoned:
                outcomes.append(Abandoned(detail=result.detail))
            elif result.deferred:
                # Same step, same counter: the send happens when the journey runs again.
                outcomes.append(RetryAt(at=run.now, message=result.message, detail=result.detail))
            else:
                outcomes.append(
                    Continue(run.following(self), message=result.message, detail=result.detail)
                )
        return outcomes


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

    def execute(self, run):
        e = run.enrollment
        if e.wait_event_name and e.wait_since:
            return self._resume(run)
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

    def _resume(self, run):
        e = run.enrollment
        if e.wait_event_id:
            event = Event.objects.filter(pk=e.wait_event_id, contact_id=run.contact.pk).first()
            if event is not None and self._passes_filter(event):
                return self._came(run, event)
        if run.now >= e.wait_timeout_at:
            return Continue(
                run.following(self, self.TIMEOUT),
                branch=self.TIMEOUT,
                detail=f"no {e.wait_event_name} in time",
            )
        # Woken by an event that did not pass the filter: wait on.
        return WaitForEvent(
            event_name=e.wait_event_name, key=e.wait_key, value=e.wait_value,
            since=e.wait_since, timeout_at=e.wait_timeout_at,
            detail=f"event {e.wait_event_id} did not match: waiting on",
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


def _as_text(value):
    """A correlation value as the database reads it from JSON (->>): text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class ConditionStep(Step):
    """Branch yes/no on a condition in Waymark's condition language (the
    one segments use: attributes, lists, segments, events, message
    engagement; docs/conditions.md), on one contact attribute, or on whether
    the contact has done a named event since entering the journey.

    Attribute tests are answered from the contact already loaded; lists,
    segments' other parts, events and messages by one query for them all.
    """

    class Kind(models.TextChoices):
        CONDITION = "condition", "Condition (the segment language)"
        ATTRIBUTE = "attribute", "Contact attribute"
        EVENT_SINCE_ENTRY = "event_since_entry", "Has done an event since entering"

    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.ATTRIBUTE)
    condition = models.JSONField(
        default=dict,
        blank=True,
        help_text='A condition tree, e.g. {"all": [{"attribute": "plan", "op": "eq", '
        '"value": "pro"}, {"event": "purchase", "op": "done", "within_days": 30}]}. '
        "Every leaf and operator is described in docs/conditions.md.",
    )
    attribute = models.CharField(
        max_length=255, blank=True, help_text='Attribute path, e.g. "plan" or "address.city".'
    )
    operator = models.CharField(
        max_length=24, choices=list(ATTRIBUTE_OPERATORS.items()), default="eq", blank=True
    )
    value = models.CharField(
        max_length=500, blank=True, help_text='Compared as JSON when it parses (30, true, "x").'
    )
    event_name = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name = "yes/no condition step"

    def clean(self):
        super().clean()
        if self.kind == self.Kind.CONDITION:
            if not self.condition:
                raise ValidationError({"condition": "Write the condition to test."})
            try:
                conditions_validate(self.condition)
            except ConditionError as exc:
                raise ValidationError({"condition": str(exc)}) from exc
        elif self.kind == self.Kind.ATTRIBUTE:
            try:
                validate_attribute_path(self.attribute)
            except ConditionError as exc:
                raise ValidationError({"attribute": str(exc)}) from exc
            if self.operator not in ATTRIBUTE_OPERATORS:
                raise ValidationError({"operator": "Choose an operator."})
            try:
                attribute_matches({}, self.attribute, self.operator, self._attribute_value())
            except ConditionError as exc:
                raise ValidationError({"value": str(exc)}) from exc
        elif not self.event_name:
            raise ValidationError({"event_name": "Name the event to look for."})

    def _attribute_value(self):
        return None if self.operator in VALUELESS_OPERATORS else parse_value(self.value)

    def matches(self, run):
        if self.kind == self.Kind.CONDITION:
            return contact_matches(self.condition, run.contact, now=run.now)
        if self.kind == self.Kind.EVENT_SINCE_ENTRY:
            seen = getattr(self, "_seen_in_batch", None)
            if seen is not None:  # looked up for the whole batch (matches_many)
                return run.enrollment.pk in seen
            return Event.objects.filter(
                contact_id=run.contact.pk,
                name=self.event_name,
                occurred_at__gte=run.enrollment.entered_at,
            ).exists()
        return attribute_matches(
            run.contact.attributes,
            self.attribute,
            self.operator,
            self._attribute_value(),
            now=run.now,
        )

    def matches_many(self, runs):
        """matches() for each of `runs` (contacts at this step in one batch), in
        order: a condition tree in one query for all of them; an event since
        entry in one query too (each contact's latest such event, compared
        with each entry time); attributes in memory."""
        if not runs:
            return []
        if self.kind == self.Kind.CONDITION:
            matched = contacts_matching(
                self.condition, {run.contact.pk for run in runs}, now=runs[0].now
            )
            return [run.contact.pk in matched for run in runs]
        if self.kind == self.Kind.EVENT_SINCE_ENTRY:
            latest = dict(
                Event.objects.filter(
                    contact_id__in={run.contact.pk for run in runs},
                    name=self.event_name,
                    occurred_at__gte=min(run.enrollment.entered_at for run in runs),
                )
                .values("contact_id")
                .annotate(latest=models.Max("occurred_at"))
                .values_list("contact_id", "latest")
            )
            self._seen_in_batch = {
                run.enrollment.pk
                for run in runs
                if run.contact.pk in latest and latest[run.contact.pk] >= run.enrollment.entered_at
            }
            try:
                return [self.matches(run) for run in runs]
            finally:
                self._seen_in_batch = None
        return [self.matches(run) for run in runs]

    def connection_labels(self):
        return ("yes", "no")

    def execute(self, run):
        (outcome,) = self.execute_many([run])
        return outcome

    def execute_many(self, runs):
        outcomes = []
        for run, matched in zip(runs, self.matches_many(runs), strict=True):
            branch = "yes" if matched else "no"
            outcomes.append(Continue(run.following(self, branch), branch=branch))
        return outcomes


def stable_share(*parts) -> float:
    """A number in [0, 1) that the same parts always give: which branch of a
    random split, or whether in a holdout, a contact falls in, the same on
    every pass and every worker."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class RandomSplitStep(Step):
    """Send contacts down one of several branches at random, by weight (an
    A/B/C test).

    The draw is stable: it depends only on the journey, this step's key and
    the contact, so a contact who comes back takes the same branch, and
    branch sizes follow the weights. Branches are labelled a, b, c … in the
    order of the weights.
    """

    MAX_BRANCHES = 5
    LABELS = "abcde"

    weights = models.CharField(
        max_length=100,
        default="50,50",
        help_text="Relative weight of each branch, in order: “50,50” or “80,10,10” "
        "(branches a, b, c …; 2 to 5 branches).",
    )

    class Meta:
        verbose_name = "random split step"

    @classmethod
    def admin_connection_labels(cls):
        return tuple(cls.LABELS)

    def parsed_weights(self) -> list[int]:
        try:
            weights = [int(part) for part in str(self.weights).split(",")]
        except ValueError:
            raise ValidationError(
                {"weights": "Give whole numbers separated by commas, e.g. 50,50."}
            ) from None
        if not 2 <= len(weights) <= self.MAX_BRANCHES:
            raise ValidationError({"weights": f"Give 2 to {self.MAX_BRANCHES} weights."})
        if any(weight < 0 for weight in weights) or not sum(weights):
            raise ValidationError({"weights": "Weights are zero or more, and not all zero."})
        return weights

    def clean(self):
        super().clean()
        self.parsed_weights()

    def connection_labels(self):
        try:
            return tuple(self.LABELS[: len(self.parsed_weights())])
        except ValidationError:
            return ()

    def branch_for(self, contact_id) -> str:
        weights = self.parsed_weights()
        point = stable_share(self.journey_id, self.key, contact_id) * sum(weights)
        for label, weight in zip(self.LABELS, weights, strict=False):
            if point < weight:
                return label
            point -= weight
        return self.LABELS[len(weights) - 1]

    def execute(self, run):
        branch = self.branch_for(run.contact.pk)
        return Continue(run.following(self, branch), branch=branch)


class SplitStep(Step):
    """Send each contact down the first branch whose condition they match,
    else down “other” (a multi-way split on the condition language that
    segments use: attributes, lists, event history …).

    `branches` is a list of up to five conditions, tried in order; the
    branches are labelled 1, 2, 3 … and `other`. Contacts at this step in one
    batch are matched together, one query per branch.
    """

    MAX_BRANCHES = 5
    OTHER = "other"

    branches = models.JSONField(
        default=list,
        blank=True,
        help_text="A list of conditions, tried in order (branch 1, 2 …), e.g. "
        '[{"attribute": "plan", "op": "eq", "value": "gold"}, '
        '{"event": "purchase", "op": "done", "within_days": 30}]. '
        "Contacts who match none take “other”. See docs/conditions.md.",
    )

    class Meta:
        verbose_name = "multi-way split step"

    @classmethod
    def admin_connection_labels(cls):
        return (*(str(n) for n in range(1, cls.MAX_BRANCHES + 1)), cls.OTHER)

    def connection_labels(self):
        count = len(self.branches) if isinstance(self.branches, list) else 0
        return (*(str(n) for n in range(1, count + 1)), self.OTHER)

    def clean(self):
        super().clean()
        if not isinstance(self.branches, list) or not 1 <= len(self.branches) <= self.MAX_BRANCHES:
            raise ValidationError(
                {"branches": f"Give a list of 1 to {self.MAX_BRANCHES} conditions."}
            )
        for number, condition in enumerate(self.branches, start=1):
            if not condition:
                raise ValidationError({"branches": f"Branch {number} has an empty condition."})
            try:
                conditions_validate(condition)
            except ConditionError as exc:
                raise ValidationError({"branches": f"Branch {number}: {exc}"}) from exc

    def execute(self, run):
        (outcome,) = self.execute_many([run])
        return outcome

    def execute_many(self, runs):
        left = {run.contact.pk for run in runs}
        branch_of = {}
        for number, condition in enumerate(self.branches, start=1):
            if not left:
                break
            matched = contacts_matching(condition, left, now=runs[0].now)
            branch_of.update(dict.fromkeys(matched, str(number)))
            left -= matched
        outcomes = []
        for run in runs:
            branch = branch_of.get(run.contact.pk, self.OTHER)
            outcomes.append(Continue(run.following(self, branch), branch=branch))
        return outcomes


class HoldoutStep(Step):
    """Keep a share of the contacts who reach this step out of the rest of the
    journey: a control group, recorded, to measure the journey's lift.

    Contacts drawn into the holdout leave the journey here (exited, marked as
    holdout) and are sent nothing more; their goal events still count as
    conversions within the journey's conversion window, as for everyone
    else, so the two groups' conversion rates can be compared. The draw is
    stable per contact, like a random split's; the others go on.
    """

    percent = models.PositiveSmallIntegerField(
        default=10, help_text="Share of contacts held out, in percent (1 to 50)."
    )

    class Meta:
        verbose_name = "holdout step"

    def clean(self):
        super().clean()
        if not 1 <= (self.percent or 0) <= 50:
            raise ValidationError({"percent": "Hold out 1 to 50 percent of contacts."})

    def held_out(self, contact_id) -> bool:
        return stable_share(self.journey_id, self.key, contact_id) * 100 < self.percent

    def execute(self, run):
        if self.held_out(run.contact.pk):
            return Holdout(detail=f"held out ({self.percent}% control group)")
        return Continue(run.following(self), branch="treatment")

    def execute_many(self, runs):
        """An event condition asks the database once for the whole batch: the
        latest such event of each contact, compared with each entry time."""
        if self.kind != self.Kind.EVENT_SINCE_ENTRY:
            return super().execute_many(runs)
        latest = dict(
            Event.objects.filter(
                contact_id__in={run.contact.pk for run in runs},
                name=self.event_name,
                occurred_at__gte=min(run.enrollment.entered_at for run in runs),
            )
            .values("contact_id")
            .annotate(latest=models.Max("occurred_at"))
            .values_list("contact_id", "latest")
        )
        self._seen_in_batch = {
            run.enrollment.pk
            for run in runs
            if run.contact.pk in latest and latest[run.contact.pk] >= run.enrollment.entered_at
        }
        try:
            return super().execute_many(runs)
        finally:
            self._seen_in_batch = None


class UpdateContactStep(Step):
    """Change the contact, then go on: set, remove or add to an attribute (a
    lead score up or down), add to or remove from a list, subscribe to or
    unsubscribe from a message type, unsubscribe from a channel, or blocklist.

    Consent changes go through the consent services and write the ledger
    (source "journey step"). The change is written in the same transaction
    as the contact's move to the next step: if that move is not made (another
    worker took the enrollment), neither is the change. Adding to a number
    that is not one fails the step, with the reason, rather than guess.
    """

    class Action(models.TextChoices):
        SET = "set", "Set an attribute"
        UNSET = "unset", "Remove an attribute"
        INCREMENT = "increment", "Add to a number attribute (a negative value subtracts)"
        ADD_TO_LIST = "add_to_list", "Add to a list"
        REMOVE_FROM_LIST = "remove_from_list", "Remove from a list"
        SUBSCRIBE = "subscribe", "Subscribe to a message type"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe from a message type"
        UNSUBSCRIBE_CHANNEL = "unsubscribe_channel", "Unsubscribe from a channel"
        BLOCKLIST = "blocklist", "Blocklist the contact"

    ATTRIBUTE_ACTIONS = (Action.SET, Action.UNSET, Action.INCREMENT)

    action = models.CharField(max_length=24, choices=Action.choices, default=Action.SET)
    attribute = models.CharField(
        max_length=255, blank=True, help_text='Attribute path, e.g. "score" or "address.city".'
    )
    value = models.CharField(
        max_length=500,
        blank=True,
        help_text='Read as JSON when it parses (30, true, "x"): the value to set, or to add.',
    )
    contact_list = models.ForeignKey(
        ContactList, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    message_type = models.ForeignKey(
        MessageType, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = "update contact step"

    def clean(self):
        super().clean()
        needs = {
            self.Action.ADD_TO_LIST: "contact_list",
            self.Action.REMOVE_FROM_LIST: "contact_list",
            self.Action.SUBSCRIBE: "message_type",
            self.Action.UNSUBSCRIBE: "message_type",
            self.Action.UNSUBSCRIBE_CHANNEL: "channel",
        }
        if self.action in self.ATTRIBUTE_ACTIONS:
            try:
                validate_attribute_path(self.attribute)
            except ConditionError as exc:
                raise ValidationError({"attribute": str(exc)}) from exc
            if self.action == self.Action.INCREMENT and not isinstance(
                parse_value(self.value), int | float
            ):
                raise ValidationError({"value": "Give the number to add, e.g. 10 or -5."})
        elif (field := needs.get(self.action)) and getattr(self, f"{field}_id") is None:
            raise ValidationError({field: "Choose one for this action."})
        scope = self.channel if self.action == self.Action.UNSUBSCRIBE_CHANNEL else None
        if self.action == self.Action.UNSUBSCRIBE and self.message_type_id:
            scope = self.message_type.channel
        if scope is not None and scope.is_transactional:
            raise ValidationError(f"{scope} is transactional: contacts cannot unsubscribe from it.")

    def execute(self, run):
        contact, action = run.contact, self.action
        if action in self.ATTRIBUTE_ACTIONS:
            detail = self._update_attribute(contact)
        elif action == self.Action.ADD_TO_LIST:
            joined = memberships_add(
                pairs={(contact.pk, self.contact_list_id)}, source=ListMembership.Source.JOURNEY
            )
            detail = f"added to {self.contact_list}" if joined else "already in the list"
        elif action == self.Action.REMOVE_FROM_LIST:
            ListMembership.objects.filter(
                contact_list_id=self.contact_list_id, contact_id=contact.pk
            ).delete()
            detail = f"removed from {self.contact_list}"
        elif action == self.Action.BLOCKLIST:
            type(contact).objects.filter(pk=contact.pk).update(blocklisted=True)
            contact.blocklisted = True
            detail = "blocklisted"
        else:
            status = (
                Subscription.Status.SUBSCRIBED
                if action == self.Action.SUBSCRIBE
                else Subscription.Status.UNSUBSCRIBED
            )
            scope = (
                {"channel": self.channel}
                if action == self.Action.UNSUBSCRIBE_CHANNEL
                else {"message_type": self.message_type}
            )
            change = subscription_set(
                contact=contact,
                status=status,
                source=ConsentSource.JOURNEY,
                note=f"Journey {run.enrollment.journey_id}, step “{self.key}”"[:255],
                **scope,
            )
            detail = f"{change.subscription.status}" if change.changed else "unchanged"
        return Continue(run.following(self), detail=detail)

    def execute_many(self, runs):
        """Attribute, list and blocklist changes are written for the whole
        batch at once (a few statements, whatever its size); consent changes
        go through the consent service contact by contact."""
        contacts = {run.contact.pk: run.contact for run in runs}
        action = self.action
        if action in self.ATTRIBUTE_ACTIONS:
            details = self._update_attributes(list(contacts.values()))
        elif action == self.Action.ADD_TO_LIST:
            already = set(
                ListMembership.objects.filter(
                    contact_list_id=self.contact_list_id, contact_id__in=contacts
                ).values_list("contact_id", flat=True)
            )
            memberships_add(
                pairs={(pk, self.contact_list_id) for pk in contacts.keys() - already},
                source=ListMembership.Source.JOURNEY,
            )
            details = {
                pk: "already in the list" if pk in already else f"added to {self.contact_list}"
                for pk in contacts
            }
        elif action == self.Action.REMOVE_FROM_LIST:
            ListMembership.objects.filter(
                contact_list_id=self.contact_list_id, contact_id__in=contacts
            ).delete()
            details = dict.fromkeys(contacts, f"removed from {self.contact_list}")
        elif action == self.Action.BLOCKLIST:
            type(runs[0].contact).objects.filter(pk__in=contacts).update(blocklisted=True)
            for contact in contacts.values():
                contact.blocklisted = True
            details = dict.fromkeys(contacts, "blocklisted")
        else:
            return super().execute_many(runs)
        return [Continue(run.following(self), detail=details[run.contact.pk]) for run in runs]

    def _update_attribute(self, contact):
        return self._update_attributes([contact])[contact.pk]

    def _update_attributes(self, contacts):
        """Apply the attribute action to each contact; {contact id: detail}.

        The rows are locked: an API update of the same contact waits, and
        neither loses the other's change. One SELECT and one UPDATE for all.
        """
        model = type(contacts[0])
        locked = dict(
            model.objects.select_for_update()
            .filter(pk__in=[c.pk for c in contacts])
            .order_by("pk")
            .values_list("pk", "attributes")
        )
        details, changed, now = {}, [], timezone.now()
        for contact in contacts:
            attributes, details[contact.pk] = self._changed(locked.get(contact.pk))
            if attributes is not None:
                contact.attributes = attributes  # what the journey's next steps read
                contact.updated_at = now
                changed.append(contact)
        if changed:
            update_from_values(model, changed, ["attributes", "updated_at"])
        return details

    def _changed(self, current):
        """(the attributes after the action, or None if unchanged; the detail)."""
        attributes = copy.deepcopy(current or {})
        *parents, leaf = self.attribute.split(".")
        node = attributes
        for part in parents:
            if not isinstance(node.get(part), dict):
                if self.action == self.Action.UNSET:
                    return None, f"{self.attribute} was not set"
                node[part] = {}
            node = node[part]
        if self.action == self.Action.UNSET:
            if node.pop(leaf, _NOT_SET) is _NOT_SET:
                return None, f"{self.attribute} was not set"
            return attributes, f"{self.attribute} removed"
        if self.action == self.Action.SET:
            node[leaf] = parse_value(self.value)
        else:
            current = node.get(leaf, 0)
            if isinstance(current, bool) or not isinstance(current, int | float):
                raise ValueError(f"{self.attribute} holds {current!r}, not a number to add to")
            node[leaf] = current + parse_value(self.value)
        return attributes, f"{self.attribute} = {node[leaf]!r}"


_NOT_SET = object()


class StartJourneyStep(Step):
    """Enter the contact into another journey, then go on here.

    The other journey must be live, with a trigger "Another journey starts
    it" naming this journey (or any), and its audience and re-entry policy
    decide as for any entry; it receives this passage's trigger data. When it does not
    take the contact, the step says why and the contact goes on all the same.
    """

    target = models.ForeignKey(
        Journey,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The journey the contact enters.",
    )

    class Meta:
        verbose_name = "start journey step"

    def clean(self):
        super().clean()
        if self.target_id and self.target_id == self.journey_id:
            raise ValidationError({"target": "A journey cannot start itself: use a connection."})

    def execute(self, run):
        (outcome,) = self.execute_many([run])
        return outcome

    def execute_many(self, runs):
        """The whole batch enters the other journey with one INSERT … SELECT."""
        from journeys.services.entry import journey_takes_from_journey, journeys_enroll_contacts

        target = Journey.objects.filter(pk=self.target_id).first()
        if target is None or target.state != Journey.State.LIVE:
            detail = f"“{target}” is not live: not started" if target else "no such journey"
            return [Continue(run.following(self), detail=detail) for run in runs]
        if not journey_takes_from_journey(journey=target, source_journey_id=self.journey_id):
            detail = f"“{target}” has no trigger taking contacts from this journey: not started"
            return [Continue(run.following(self), detail=detail) for run in runs]
        entered = journeys_enroll_contacts(
            journey=target,
            entries=[(run.contact.pk, run.enrollment.trigger_data) for run in runs],
        )
        return [
            Continue(
                run.following(self),
                detail=f"started “{target}”"
                if run.contact.pk in entered
                else f"“{target}” did not take them (re-entry policy or audience)",
            )
            for run in runs
        ]


class ExitStep(Step):
    """End the contact's passage through the journey here: they have completed
    it, as if they had run off its last step."""

    continues = False

    class Meta:
        verbose_name = "exit step"

    def execute(self, run):
        return Complete()


# --- steps that call out: a webhook, a note to staff ----------------------------------

# A call that failed for a passing reason (no answer, 5xx, the mail server
# down) is tried again after 1, 4, 16 … minutes, as many times as the step allows.
CALL_RETRY_BASE = timedelta(minutes=1)
# A batch stops calling out after a third of its lease has gone (a slow URL
# times 500 contacts): the rest are called on the next pass, not counted as
# tries, before the lease could run out and a second worker call them too.
NOT_CALLED_YET = "not called yet: this batch ran out of time; on the next pass"


def _tries_so_far(step, runs) -> dict:
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


def _retry_or_fail(run, *, tries, retries, detail, failed):
    """RetryAt while retries remain, else what `failed(detail)` makes of it."""
    if tries < retries:
        at = run.now + CALL_RETRY_BASE * (4**tries)
        return RetryAt(
            at=at,
            detail=f"try {tries + 1} of {retries + 1} failed: {detail}; again at "
            f"{at.isoformat(timespec='seconds')}",
        )
    return failed(f"failed after {tries + 1} tries: {detail}" if tries else f"failed: {detail}")


_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class WebhookStep(Step):
    """Call a URL about the contact (POST a JSON body built from the contact and
    the event, by default), then go on; optionally keep fields of the answer.

    Never calls a private, loopback, link-local or otherwise internal address
    (each host is resolved and checked, redirects too) unless the operator
    allows its network (WAYMARK_WEBHOOK_ALLOWED_NETWORKS). No answer in time,
    no connection, 408, 429 and 5xx are tried again a few times, minutes
    apart; another 4xx is not. A call that fails for good sends the contact
    along the "failed" connection (empty: on as after a success), with the
    status and the start of the answer in the step run. Saved fields go into
    the contact's attributes and/or the journey's data (`{{ event.<key> }}`
    in later steps).
    """

    performs_io = True

    class Method(models.TextChoices):
        POST = "POST", "POST"
        PUT = "PUT", "PUT"
        PATCH = "PATCH", "PATCH"
        GET = "GET", "GET"

    MAX_TIMEOUT = 30
    MAX_RETRIES = 5

    method = models.CharField(max_length=8, choices=Method.choices, default=Method.POST)
    url = models.CharField(
        max_length=2000,
        help_text="http:// or https:// URL; may use {{ contact.* }} and {{ event.* }}.",
    )
    headers = models.JSONField(
        default=dict,
        blank=True,
        help_text='Sent as written, e.g. {"Authorization": "Bearer …"}. '
        "They are kept with the journey and appear in its exported document.",
    )
    body = models.TextField(
        blank=True,
        help_text='JSON, e.g. {"email": "{{ contact.email }}", "plan": "{{ event.plan }}"}: '
        "each string is filled in on its own, so the contact's data stays a value. "
        "Empty: no body. A GET sends none.",
    )
    timeout = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TIMEOUT)],
        help_text="Seconds the URL has to answer (at most 30).",
    )
    retries = models.PositiveSmallIntegerField(
        default=3,
        validators=[MaxValueValidator(MAX_RETRIES)],
        help_text="Tries again after no answer, a network error, 408, 429 or 5xx: "
        "1, 4, 16 … minutes later (at most 5). Other answers are not tried again.",
    )
    save_to_attributes = models.JSONField(
        default=dict,
        blank=True,
        help_text='Fields of a JSON answer to keep on the contact: {"answer path": '
        '"attribute"}, e.g. {"data.id": "crm_id", "tiers.0": "tier"}.',
    )
    save_to_data = models.JSONField(
        default=dict,
        blank=True,
        help_text="Fields of a JSON answer later steps can use as {{ event.<key> }}: "
        '{"answer path": "key"}, e.g. {"data.score": "lead_score"}.',
    )
    FAILED = "failed"

    class Meta:
        verbose_name = "webhook step"

    def connection_labels(self):
        # "failed": where contacts go when the call fails for good (without
        # a connection of its own, on as after a success).
        return (NEXT, self.FAILED)

    def clean(self):
        super().clean()
        errors = {}
        url = self.url.strip()
        # Only what comes before a template tag can be checked before rendering.
        literal = url.split("{", 1)[0] if "{" in url else url
        if (literal and not literal.lower().startswith(("http://", "https://"))) or (
            "{" not in url and url_problem(url)
        ):
            errors["url"] = "The URL must start with https:// or http://."
        if self.method == self.Method.GET and self.body.strip():
            errors["body"] = "A GET request carries no body: choose POST, PUT or PATCH."
        for field in ("url", "body"):
            try:
                check_syntax(getattr(self, field))
            except TemplateSyntaxProblem as exc:
                errors.setdefault(field, str(exc))
        if not isinstance(self.headers, dict) or not all(
            isinstance(name, str)
            and _HEADER_NAME_RE.match(name)
            and isinstance(value, str)
            and "\r" not in value
            and "\n" not in value
            for name, value in self.headers.items()
        ):
            errors["headers"] = (
                'Give the headers as an object of names and text values, e.g. {"X-Token": "…"}.'
            )
        for field in ("save_to_attributes", "save_to_data"):
            if problem := self._mapping_problem(getattr(self, field)):
                errors[field] = problem
        if errors:
            raise ValidationError(errors)

    @staticmethod
    def _mapping_problem(mapping) -> str:
        if not isinstance(mapping, dict):
            return 'Give an object: {"answer path": "where it goes"}.'
        for source, target in mapping.items():
            if not source or any(not part for part in str(source).split(".")):
                return f"{source!r} is not a path in the answer (e.g. data.id)."
            try:
                validate_attribute_path(target if isinstance(target, str) else "")
            except ConditionError as exc:
                return f"{source!r} → {target!r}: {exc}"
        return ""

    def execute(self, run):
        (outcome,) = self.execute_many([run])
        return outcome

    def execute_many(self, runs):
        tries = _tries_so_far(self, runs)
        budget = settings.WAYMARK_ENGINE["LEASE"].total_seconds() / 3
        started, outcomes = monotonic(), []
        with CheckedSession() as session:
            for run in runs:
                if monotonic() - started > budget:
                    outcomes.append(RetryAt(at=timezone.now(), detail=NOT_CALLED_YET))
                else:
                    outcomes.append(self._call(run, session, tries[run.enrollment.pk]))
        return outcomes

    def _call(self, run, session, tries):
        def failed(detail):
            return Continue(
                run.following_or_next(self, self.FAILED), branch=self.FAILED, detail=detail
            )

        context = message_context(contact=run.contact, event=run.enrollment.trigger_data or {})
        try:
            url = render_string(self.url, context, html=False).strip()
            body, is_json = ("", False)
            if self.method != self.Method.GET:
                body, is_json = render_body(self.body, context)
        except RenderError as exc:
            return failed(f"failed: could not fill in the call: {exc}")
        if problem := url_problem(url):
            return failed(f"failed: {problem} It was {url[:200]!r}.")
        data = body.encode() if body else None
        headers = {"User-Agent": USER_AGENT, "Idempotency-Key": run.idempotency_key}
        if body:
            headers["Content-Type"] = "application/json" if is_json else "text/plain; charset=utf-8"
        headers.update(self.headers or {})
        headers.update(signature_headers(data))
        result = webhook_call(
            session=session,
            method=self.method,
            url=url,
            headers=headers,
            body=data,
            timeout=min(self.timeout, self.MAX_TIMEOUT),
        )
        if not result.ok:
            retries = self.retries if result.transient else 0
            return _retry_or_fail(
                run, tries=tries, retries=retries, detail=result.detail, failed=failed
            )
        notes = self._save(run, result.data)
        if notes is None:
            return Abandoned(detail="another worker took the enrollment after the call")
        detail = "; ".join([result.detail, *notes])
        return Continue(run.following(self), branch="ok", detail=detail)

    def _save(self, run, answer) -> list | None:
        """Keep the answer's fields; notes for the step run (None: the lease is lost)."""
        if not (self.save_to_attributes or self.save_to_data):
            return []
        if answer is None:
            return ["the answer is not JSON: nothing saved"]
        notes, missing = [], []

        def found(mapping):
            merged = {}
            for source, target in mapping.items():
                value = json_path_value(answer, source)
                if is_missing(value):
                    missing.append(source)
                else:
                    merged = deep_merge(merged, nested(target, value))
            return merged

        attributes, data = found(self.save_to_attributes), found(self.save_to_data)
        enrollment, contact = run.enrollment, run.contact
        if data:
            trigger_data = deep_merge(enrollment.trigger_data or {}, data)
            from journeys.models.enrollment import Enrollment  # it imports this module

            try:
                with transaction.atomic():
                    kept = Enrollment.objects.filter(
                        pk=enrollment.pk, lease_token=run.token
                    ).update(trigger_data=trigger_data)
            except DataError:  # a value PostgreSQL will not store (a NUL character)
                notes.append("the journey's data could not store the answer's fields")
            else:
                if not kept:
                    return None
                enrollment.trigger_data = trigger_data
                notes.append(f"kept {', '.join(sorted(data))} for later steps")
        if attributes:
            identity = {"user_id": contact.user_id} if contact.user_id else {"email": contact.email}
            try:
                result = users_update(
                    updates=[UserUpdate(**identity, data=attributes, merge_nested=True)]
                )
                if result.failures:
                    raise UserError(result.failures[0].message)
            except UserError as exc:  # e.g. a value PostgreSQL will not store
                notes.append(f"attributes not saved: {exc}")
            else:
                contact.attributes = result.updated[0].contact.attributes
                notes.append(f"saved {', '.join(sorted(attributes))} on the contact")
        if missing:
            notes.append(f"not in the answer: {', '.join(missing)}")
        return notes


class NotifyStaffStep(Step):
    """Email staff that the contact reached this step, then go on.

    A transactional note to people of the company, not a message to the
    contact: the contact's consent and subscriptions do not apply, and
    nothing is recorded as sent to them. Recipients are addresses and/or
    the active members of a group; the subject and body are templates over
    the contact and the event (plain text), and the email ends with a link
    to the contact's page in the admin. A mail server that fails is tried
    again a few times, minutes apart; after that the contact goes on and
    the step run says the note was not sent.
    """

    performs_io = True

    RETRIES = 3

    recipients = models.TextField(
        blank=True, help_text="Email addresses, separated by commas or new lines."
    )
    staff_group = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Also every active member of this group who has an email address.",
    )
    subject = models.CharField(
        max_length=300,
        default="{{ contact.email }} reached a journey step",
        help_text="May use {{ contact.* }} and {{ event.* }}.",
    )
    body = models.TextField(
        blank=True,
        help_text="Plain text; may use {{ contact.* }} and {{ event.* }}. A link to the "
        "contact's page in the admin is added at the end.",
    )

    class Meta:
        verbose_name = "notify staff step"

    def addresses(self) -> list[str]:
        return [part for part in re.split(r"[\s,;]+", self.recipients or "") if part]

    def clean(self):
        super().clean()
        errors = {}
        bad = []
        for address in self.addresses():
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            errors["recipients"] = f"Not an email address: {', '.join(bad)}."
        elif not self.addresses() and self.staff_group_id is None:
            errors["recipients"] = "Give an address, or choose a group to notify."
        for field in ("subject", "body"):
            try:
                check_syntax(getattr(self, field))
            except TemplateSyntaxProblem as exc:
                errors[field] = str(exc)
        if errors:
            raise ValidationError(errors)

    def _recipients(self) -> list[str]:
        found = dict.fromkeys(address.lower() for address in self.addresses())
        if self.staff_group_id:
            members = (
                get_user_model()
                .objects.filter(groups=self.staff_group_id, is_active=True)
                .exclude(email="")
                .order_by("email")
                .values_list("email", flat=True)
            )
            found.update(dict.fromkeys(email.lower() for email in members))
        return list(found)

    def execute(self, run):
        (outcome,) = self.execute_many([run])
        return outcome

    def execute_many(self, runs):
        recipients = self._recipients()
        if not recipients:
            return [
                Continue(run.following(self), branch="", detail="no one to notify: not sent")
                for run in runs
            ]
        tries = _tries_so_far(self, runs)
        emails = [self._email(run, recipients) for run in runs]
        connection = get_connection()
        try:
            connection.open()
        except Exception as exc:  # the mail server is down: every note waits
            problem = f"{type(exc).__name__}: {exc}"
            return [self._not_sent(run, tries, problem) for run in runs]
        outcomes = []
        try:
            for run, email in zip(runs, emails, strict=True):
                if isinstance(email, str):  # a template that would not render
                    outcomes.append(Continue(run.following(self), branch="", detail=email))
                    continue
                email.connection = connection
                try:
                    email.send()
                except Exception as exc:
                    outcomes.append(self._not_sent(run, tries, f"{type(exc).__name__}: {exc}"))
                    continue
                outcomes.append(
                    Continue(
                        run.following(self), detail=f"notified {len(recipients)} staff member(s)"
                    )
                )
        finally:
            connection.close()
        return outcomes

    def _not_sent(self, run, tries, problem):
        def failed(detail):
            return Continue(run.following(self), detail=f"not sent: {detail}")

        return _retry_or_fail(
            run, tries=tries[run.enrollment.pk], retries=self.RETRIES, detail=problem[:300],
            failed=failed,
        )  # fmt: skip

    def _email(self, run, recipients):
        """The note for `run`, or why it could not be written."""
        context = message_context(contact=run.contact, event=run.enrollment.trigger_data or {})
        try:
            subject = render_string(self.subject, context, html=False)
            body = render_string(self.body, context, html=False)
        except RenderError as exc:
            return f"not sent: the note could not be filled in: {exc}"[:500]
        # One line, whatever the data held: a subject is a header.
        subject = " ".join(subject.split())[:250] or f"{run.contact} reached “{self.key}”"
        link = settings.SITE_URL + reverse("admin:contacts_contact_change", args=[run.contact.pk])
        journey = self.journey  # one query for the batch: the step is shared
        step = self.name or self.key
        footer = f"Contact: {run.contact}\n{link}\n\nJourney “{journey}”, step “{step}”."
        text = f"{body.rstrip()}\n\n-- \n{footer}\n" if body.strip() else f"{footer}\n"
        return EmailMessage(subject=subject, body=text, to=recipients)
