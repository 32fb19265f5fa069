"""Steps that choose the way on: a yes/no condition, splits, a holdout."""

from django.core.exceptions import ValidationError
from django.db import models

from contacts.conditions import (
    ATTRIBUTE_OPERATORS,
    VALUELESS_OPERATORS,
    ConditionError,
    attribute_matches,
    conditions_validate,
    contact_matches,
    contacts_matching,
    parse_value,
    validate_attribute_path,
)
from contacts.models import Event
from journeys.models.steps.base import Step, stable_share
from journeys.outcomes import (
    Continue,
    Holdout,
)


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
