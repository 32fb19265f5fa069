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
from datetime import date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from polymorphic.models import PolymorphicModel

from contacts.conditions import (
    ATTRIBUTE_OPERATORS,
    VALUELESS_OPERATORS,
    ConditionError,
    attribute_matches,
    attribute_value,
    parse_value,
    validate_attribute_path,
)
from contacts.models import ContactList, Event, ListMembership
from contacts.services.lists import memberships_add
from contacts.sql import update_from_values
from journeys.models.journey import Journey
from journeys.outcomes import Abandoned, Complete, Continue, RetryAt, WaitUntil
from messaging.models import Message, Template
from messaging.services import SendRequest, messages_send
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
    next_step = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: continue with the next step by position.",
    )

    # True for steps whose execute() talks to the outside world (sends,
    # webhooks): the runner commits before them and runs them outside any
    # transaction. Steps that only read and write the database leave it False.
    performs_io = False
    # For the checks before going live (journeys.services.validation): whether
    # a contact waits here (a loop through such a step is not a runaway), goes
    # on from here at all, and which fields pick the next step by branch
    # (empty: `next_step`, or the next by position).
    waits = False
    continues = True
    branch_fields = ()

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["journey", "key"], name="step_key_unique_in_journey"),
        ]

    def __str__(self):
        return f"{self.position}. {self.name or self.key}"

    def execute(self, run):
        raise NotImplementedError(f"{type(self).__name__} must implement execute()")

    def execute_many(self, runs):
        """execute() for each of `runs` (every contact at this step in one
        batch), in order: their outcomes.

        The runner calls this, not execute(), so a step whose execute() costs
        queries overrides it with a set-based version (a few statements for
        the whole batch). Should it raise, the runner runs each contact alone
        through execute(), so one contact's error fails only that contact.
        """
        return [self.execute(run) for run in runs]

    def clean(self):
        for field in self._step_link_fields():
            target = getattr(self, field)
            if target is None:
                continue
            if self.pk and target.pk == self.pk:
                raise ValidationError({field: "A step cannot lead to itself."})
            if target.journey_id != self.journey_id:
                raise ValidationError({field: "Choose a step of the same journey."})

    def _step_link_fields(self):
        return [
            f.name
            for f in self._meta.get_fields()
            if isinstance(f, models.ForeignKey)
            and f.related_model is Step
            and not f.remote_field.parent_link
        ]


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


class ConditionStep(Step):
    """Branch yes/no on a contact attribute, or on whether the contact has
    done a named event since entering the journey."""

    class Kind(models.TextChoices):
        ATTRIBUTE = "attribute", "Contact attribute"
        EVENT_SINCE_ENTRY = "event_since_entry", "Has done an event since entering"

    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.ATTRIBUTE)
    attribute = models.CharField(
        max_length=255, blank=True, help_text='Attribute path, e.g. "plan" or "address.city".'
    )
    operator = models.CharField(
        max_length=16, choices=list(ATTRIBUTE_OPERATORS.items()), default="eq", blank=True
    )
    value = models.CharField(
        max_length=500, blank=True, help_text='Compared as JSON when it parses (30, true, "x").'
    )
    event_name = models.CharField(max_length=255, blank=True)
    yes_step = models.ForeignKey(
        Step,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: the next step by position.",
    )
    no_step = models.ForeignKey(
        Step,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: the next step by position.",
    )

    branch_fields = ("yes_step", "no_step")

    class Meta:
        verbose_name = "yes/no condition step"

    def clean(self):
        super().clean()
        if self.kind == self.Kind.ATTRIBUTE:
            try:
                validate_attribute_path(self.attribute)
            except ConditionError as exc:
                raise ValidationError({"attribute": str(exc)}) from exc
            if self.operator not in ATTRIBUTE_OPERATORS:
                raise ValidationError({"operator": "Choose an operator."})
        elif not self.event_name:
            raise ValidationError({"event_name": "Name the event to look for."})

    def matches(self, run):
        if self.kind == self.Kind.EVENT_SINCE_ENTRY:
            seen = getattr(self, "_seen_in_batch", None)
            if seen is not None:  # looked up for the whole batch (execute_many)
                return run.enrollment.pk in seen
            return Event.objects.filter(
                contact_id=run.contact.pk,
                name=self.event_name,
                occurred_at__gte=run.enrollment.entered_at,
            ).exists()
        value = None if self.operator in VALUELESS_OPERATORS else parse_value(self.value)
        return attribute_matches(run.contact.attributes, self.attribute, self.operator, value)

    def execute(self, run):
        if self.matches(run):
            return Continue(run.step(self.yes_step_id) or run.following(self), branch="yes")
        return Continue(run.step(self.no_step_id) or run.following(self), branch="no")

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

    The other journey must be live, and its re-entry policy decides as for
    any entry; it receives this passage's trigger data. When it does not
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
        from journeys.services.entry import journeys_enroll_contact

        target = Journey.objects.filter(pk=self.target_id).first()
        if target is None or target.state != Journey.State.LIVE:
            detail = f"“{target}” is not live: not started" if target else "no such journey"
            return Continue(run.following(self), detail=detail)
        entered = journeys_enroll_contact(
            journey=target, contact=run.contact, trigger_data=run.enrollment.trigger_data
        )
        detail = f"started “{target}”" if entered else f"“{target}” did not take them again"
        return Continue(run.following(self), detail=detail)

    def execute_many(self, runs):
        """The whole batch enters the other journey with one INSERT … SELECT."""
        from journeys.services.entry import journeys_enroll_contacts

        target = Journey.objects.filter(pk=self.target_id).first()
        if target is None or target.state != Journey.State.LIVE:
            detail = f"“{target}” is not live: not started" if target else "no such journey"
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
                else f"“{target}” did not take them again",
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
