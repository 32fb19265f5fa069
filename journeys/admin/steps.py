"""A journey's steps and entry triggers, as inlines of its admin page."""

import inspect
import json
import re

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.widgets import AutocompleteMixin
from django.core.exceptions import ValidationError
from django.db.models import prefetch_related_objects
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.text import slugify
from django.utils.translation import gettext
from polymorphic.admin import StackedPolymorphicInline
from polymorphic.admin.helpers import PolymorphicInlineAdminFormSet
from polymorphic.formsets import BasePolymorphicInlineFormSet

from journeys.models import (
    ConditionStep,
    Connection,
    DelayStep,
    Enrollment,
    ExitStep,
    HoldoutStep,
    JourneyTrigger,
    NotifyStaffStep,
    RandomSplitStep,
    SendMessageStep,
    SplitStep,
    StartJourneyStep,
    Step,
    UpdateContactStep,
    WaitForEventStep,
    WebhookStep,
)
from journeys.services.editing import (
    enrollments_move,
    step_open_enrollment_counts,
)
from journeys.services.graph import step_connect

COMMON_STEP_FIELDS = ("position", "key", "name")
# On every step's form: where its contacts go if it is deleted.
MOVE_FIELD = "move_contacts_to"
# The form field that holds a step's connection on `label`.
CONNECTION_FIELD = "go_{}"
CONNECTION_HELP = {
    "next": "Key of the step that comes next. Empty: the next step below.",
    "yes": "Key of the step for contacts who match. Empty: the next step below.",
    "no": "Key of the step for contacts who do not match. Empty: the next step below.",
    "other": "Key of the step for contacts who match no branch. Empty: the next step below.",
    "event": "Key of the step for contacts who did the event. Empty: the next step below.",
    "timeout": "Key of the step for contacts who did not, in time. Empty: the next step below.",
    "failed": "Key of the step for contacts whose call failed for good. Empty: as after a success.",
}


# The id of the page's one list of this journey's step keys (StepInlineAdminFormSet).
STEP_KEYS_LIST = "journey-step-keys"


class StepKeyInput(forms.TextInput):
    """A step key, with this journey's existing keys offered as suggestions
    (a step added on the same page can be named by the key typed for it).

    Every key field of the page offers the same list, written once: a list
    per field was 40 keys in each of some 160 fields on a journey of 40 steps, most
    of the page's weight and of the time taken to render it."""

    def __init__(self, attrs=None):
        super().__init__(attrs={"size": 20, "list": STEP_KEYS_LIST, **(attrs or {})})


class StepForm(forms.ModelForm):
    """A step's own settings, and its connections named by step key.

    Connections are chosen by key, not from a list of saved steps, so a step
    added on this page can be chosen before anything is saved; the formset
    checks every key against the steps on the page and JourneyAdmin saves
    the connections once every step is saved. Position and key may be left
    empty: a new step then goes after the others, in page order, and takes a
    key made from its name or type.
    """

    move_contacts_to = forms.CharField(
        label="If deleted, move its contacts to",
        required=False,
        max_length=64,
        widget=StepKeyInput(),
        help_text="Only when deleting a step that contacts are on: the key of a saved step "
        "they go to instead.",
    )

    def __init__(self, *args, journey_keys=(), journey_connections=None, **kwargs):
        super().__init__(*args, **kwargs)
        if "position" in self.fields:
            self.fields["position"].required = False
            self.fields["position"].help_text = "Order on the diagram. Empty: after the others."
            if self.instance.pk is None and not self.is_bound:
                # A new row starts empty, not at the model's 0 (which would put
                # it before every step): left so, it goes after the others.
                self.initial["position"] = None
        if "key" in self.fields:
            self.fields["key"].required = False
            self.fields[
                "key"
            ].help_text = (
                "Short name, unique within the journey. Empty: made from the name or type."
            )
        current = (journey_connections or {}).get(self.instance.pk, {})
        for label in type(self.instance).admin_connection_labels():
            if not self.is_bound:
                self.initial[CONNECTION_FIELD.format(label)] = current.get(label, "")

    def connection_labels(self):
        """The labels the step has, as its settings stand (a split's weights
        say how many branches it has)."""
        return self.instance.connection_labels()

    def connection_keys(self, *, offered=False):
        """{label: key or ""} as typed: for the labels the step has, or, with
        `offered`, for every label the form offers."""
        labels = type(self.instance).admin_connection_labels() if offered else None
        return {
            label: (self.cleaned_data.get(CONNECTION_FIELD.format(label)) or "").strip()
            for label in labels or self.connection_labels()
        }

    def has_changed(self):
        # Every new row on the page was added through "Add another": one left
        # as it came is still a step the marketer asked for, so it is checked
        # and saved (or its errors shown), never dropped without a word.
        return self.instance.pk is None or super().has_changed()


def step_form(model):
    """StepForm for `model`, with a key field for each of its connections."""
    labels = model.admin_connection_labels()
    attrs = {
        CONNECTION_FIELD.format(label): forms.CharField(
            label=f"Go to ({label})",
            required=False,
            max_length=64,
            widget=StepKeyInput(),
            help_text=CONNECTION_HELP.get(
                label,
                f"Key of the step for branch “{label}”, if the split has it. "
                "Empty: the next step below.",
            ),
        )
        for label in labels
    }
    return type(f"{model.__name__}Form", (StepForm,), attrs)


def connection_fields(model):
    return tuple(CONNECTION_FIELD.format(label) for label in model.admin_connection_labels())


def step_type_help(model) -> str:
    """What a step type does, for the top of its form: the first paragraph of
    its docstring (the one line STYLE.md asks every step type for), with the
    docstring's `names` in quotes."""
    first = inspect.cleandoc(model.__doc__ or "").split("\n\n", 1)[0]
    return re.sub(r"`([^`]+)`", r"“\1”", " ".join(first.split()))


class StepChildInline(StackedPolymorphicInline.Child):
    """Shared by every step type: what it does, its own settings, then its connections."""

    @property
    def step_help(self) -> str:
        return step_type_help(self.model)

    def read_only_fieldsets(self, request, obj=None):
        """The fieldsets for staff who may not change the journey: its
        settings, and its connections as text instead of the key fields."""
        fieldsets = []
        for name, options in self.get_fieldsets(request, obj):
            fields = [
                line
                for line in options["fields"]
                if line != MOVE_FIELD
                and not (isinstance(line, tuple) and set(line) <= {*connection_fields(self.model)})
            ]
            fieldsets.append((name, {**options, "fields": [*fields, "goes_to"]}))
        return fieldsets

    @admin.display(description="Goes to")
    def goes_to(self, step):
        """Each connection as "label → key" ("next step below" for none)."""
        targets = self.parent_inline.connection_keys(step.journey_id).get(step.pk, {})
        return (
            "; ".join(
                f"{label} → {targets.get(label) or 'the next step below'}"
                for label in step.connection_labels()
            )
            or "— (the journey ends here)"
        )

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.form = step_form(cls.model)
        if cls.fields:
            cls.fields = (*cls.fields, MOVE_FIELD)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "engagement_step":
            # A send step of this journey (saved: choose it after a first save).
            journey_id = request.resolver_match.kwargs.get("object_id")
            kwargs["queryset"] = SendMessageStep.objects.filter(journey_id=journey_id or 0)
        elif db_field.name == "template":
            kwargs["queryset"] = db_field.related_model.objects.select_related(
                "message_type__channel"
            ).filter(**db_field.get_limit_choices_to())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class SharedChoicesFormSet:
    """Formset mixin: each dropdown's choices are read once for the formset.

    A ModelChoiceField reads its queryset each time its form is rendered, so
    a journey of 40 send steps read the templates 40 times (and each empty
    form once more). The choices of a field of a form type are read for the
    first form and handed to the others; checking a posted value still goes
    through the field's queryset.
    """

    def add_fields(self, form, index):
        super().add_fields(form, index)
        shared = self.__dict__.setdefault("_shared_choices", {})
        for name, field in form.fields.items():
            # Not the hidden primary key (a choice of every step), nor an
            # autocomplete (it reads only the chosen rows).
            if (
                not isinstance(field, forms.ModelChoiceField)
                or field.widget.is_hidden
                or isinstance(getattr(field.widget, "widget", field.widget), AutocompleteMixin)
            ):
                continue
            key = (type(form), name)
            if key not in shared:
                # iter(): list() would first count the rows, one more query.
                shared[key] = list(iter(field.choices))
            field.choices = shared[key]


# The query parameter of the editor that shows one step's form (the diagram's link).
FOCUS_PARAMETER = "step"


def focused_step_id(request) -> int | None:
    """The step the editor shows alone, if its address names one."""
    value = request.GET.get(FOCUS_PARAMETER, "")
    return int(value) if value.isdigit() else None


class StepFormSet(SharedChoicesFormSet, BasePolymorphicInlineFormSet):
    """Every step of the journey, or one (the editor opened on a step): the
    checks below hold the forms on the page against the journey's other saved
    steps too, so a key is unique and a connection names a step whether or
    not that step's form is on the page."""

    def _off_page_steps(self):
        """The journey's saved steps that have no form on this page."""
        if not hasattr(self, "_off_page"):
            on_page = [form.instance.pk for form in self.forms if form.instance.pk]
            self._off_page = (
                list(
                    Step.objects.non_polymorphic()
                    .filter(journey=self.instance)
                    .exclude(pk__in=on_page)
                    .only("pk", "key", "position", "journey_id")
                )
                if self.instance.pk
                else []
            )
        return self._off_page

    def _kept_forms(self):
        return [
            form
            for form in self.forms
            if hasattr(form, "cleaned_data") and not self._should_delete_form(form)
        ]

    def clean(self):
        super().clean()
        kept = self._kept_forms()
        off_page = {step.key for step in self._off_page_steps()}
        self._fill_positions_and_keys(kept)
        # Step type forms leave out `journey`, so Django cannot check the
        # (journey, key) constraint itself; the forms and the saved steps off
        # the page are every step of the journey, so checking here covers it.
        seen = set(off_page)
        for form in kept:
            key = form.instance.key
            if key in seen:
                form.add_error("key", f"Another step of this journey already uses the key “{key}”.")
            seen.add(key)
        deleted = {
            form.instance.key
            for form in self.forms
            if form.instance.pk and self.can_delete and self._should_delete_form(form)
        } - seen
        for form in kept:
            labels = form.connection_labels()
            for label, target in form.connection_keys(offered=True).items():
                field = CONNECTION_FIELD.format(label)
                if not target:
                    continue
                if label not in labels:
                    form.add_error(field, f"This step has no “{label}” branch: leave it empty.")
                elif target == form.instance.key:
                    form.add_error(field, "A step cannot lead to itself.")
                elif target in deleted:
                    form.add_error(
                        field, f"Step “{target}” is being deleted: choose another step "
                        "(or leave it empty for the next step below).",
                    )  # fmt: skip
                elif target not in seen:
                    form.add_error(
                        field, f"No step of this journey has the key “{target}”: choose one "
                        "of the keys above (or leave it empty for the next step below).",
                    )  # fmt: skip
        self._refuse_deleting_occupied_steps()

    def _fill_positions_and_keys(self, kept):
        """New steps without a position go after the others, in page order;
        steps without a key get one from their name, else their type."""
        off_page = self._off_page_steps()
        last = max(
            (step.position or 0 for step in [*off_page, *(form.instance for form in kept)]),
            default=0,
        )
        taken = {form.cleaned_data.get("key") for form in kept} - {None, ""}
        taken |= {step.key for step in off_page}
        for form in kept:
            if form.cleaned_data.get("position") is None:
                last += 1
                form.instance.position = last
            if not form.cleaned_data.get("key"):
                base = slugify(form.instance.name)[:50] or slugify(
                    form.instance._meta.verbose_name.removesuffix(" step")
                )
                key, n = base, 1
                while key in taken:
                    n += 1
                    key = f"{base}-{n}"
                taken.add(key)
                form.instance.key = key

    def save_connections(self):
        """Point each kept step's connections at the steps their keys name,
        once every step of the page is saved."""
        kept = [form for form in self._kept_forms() if form.instance.pk]
        by_key = {step.key: step for step in Step.objects.filter(journey=self.instance)}
        for form in kept:
            step_connect(
                step=form.instance,
                targets={
                    label: by_key.get(key) if key else None
                    for label, key in form.connection_keys().items()
                },
            )

    def _refuse_deleting_occupied_steps(self):
        """A step with contacts on it cannot vanish: its form names the saved
        step they move to instead, or they are exited first."""
        self.moves = {}
        doomed = {
            form.instance.pk: form
            for form in self.forms
            if form.instance.pk and self.can_delete and self._should_delete_form(form)
        }
        if not doomed:
            return
        saved_and_kept = {
            **{step.key: step for step in self._off_page_steps()},
            **{form.instance.key: form.instance for form in self._kept_forms() if form.instance.pk},
        }
        counts = step_open_enrollment_counts(step_ids=list(doomed))
        problems = []
        for step_id, count in counts.items():
            form = doomed[step_id]
            target = (form.cleaned_data.get(MOVE_FIELD) or "").strip()
            if target in saved_and_kept:
                self.moves[step_id] = saved_and_kept[target]
                continue
            url = (
                reverse("admin:journeys_enrollment_changelist")
                + "?"
                + urlencode({"journey__id__exact": form.instance.journey_id, "step": step_id})
            )
            problems.append(
                f"{count} contact(s) are on step “{form.instance.key}”: in its “If deleted, "
                "move its contacts to”, give the key of a saved step they should go to, or "
                f"exit them first (Enrollments: {url}); then delete it."
            )
        if problems:
            raise ValidationError(problems)

    def move_contacts_off_deleted_steps(self):
        """Before the deletions: contacts on a deleted step go where its form said."""
        for step_id, to_step in getattr(self, "moves", {}).items():
            enrollments_move(
                enrollments=Enrollment.objects.filter(
                    current_step_id=step_id, state__in=Enrollment.OPEN_STATES
                ),
                to_step=to_step,
            )


class StepInlineAdminFormSet(PolymorphicInlineAdminFormSet):
    """Polymorphic, like Django, capitalises the add link ("Add another Step");
    keep the verbose name as written, like the type menu under it. Also the
    page's one list of step keys that every key field offers.

    For staff who may only view the journey (or a drafter, a live one),
    every field is read-only and no blank form is offered, as Django's own
    inlines do: polymorphic's would render each step's form for editing.
    """

    def __iter__(self):
        if not self.has_change_permission:
            self._prefetch_shown_relations()
        for inline_admin_form in super().__iter__():
            if inline_admin_form.original is None and not self.has_add_permission:
                continue
            yield inline_admin_form

    def _prefetch_shown_relations(self):
        """A read-only step shows what its foreign keys point at (a template,
        a list): read them per step type, not per step."""
        by_type = {}
        for step in self.formset.get_queryset():
            by_type.setdefault(type(step), []).append(step)
        for model, steps in by_type.items():
            shown = set(self.get_child_readonly_fields(self.opts.get_child_inline_instance(model)))
            relations = [
                field.name
                for field in model._meta.concrete_fields
                if field.many_to_one and field.name in shown
            ]
            prefetch_related_objects(steps, *relations)

    def get_child_fieldsets(self, child_inline):
        if self.has_change_permission:
            return super().get_child_fieldsets(child_inline)
        return child_inline.read_only_fieldsets(self.request, self.obj)

    def get_child_readonly_fields(self, child_inline):
        if self.has_change_permission:
            return super().get_child_readonly_fields(child_inline)
        return flatten_fieldsets(self.get_child_fieldsets(child_inline))

    def step_keys_datalist(self):
        keys = self.formset.form_kwargs.get("journey_keys", ())
        return format_html(
            '<datalist id="{}">{}</datalist>',
            STEP_KEYS_LIST,
            format_html_join("", '<option value="{}"></option>', ((key,) for key in keys)),
        )

    def inline_formset_data(self):
        data = json.loads(super().inline_formset_data())
        data["options"]["addText"] = gettext("Add another %(verbose_name)s") % {
            "verbose_name": self.opts.verbose_name
        }
        return json.dumps(data)


class StepInline(StackedPolymorphicInline):
    """A journey's steps, each row its own type. New steps can link to others after a save."""

    model = Step
    formset = StepFormSet

    class Media:
        # On StepInline, not ConditionStepInline: polymorphic leaves out a
        # child inline's media when its CSS matches the parent's.
        js = ("journeys/admin/condition_step.js",)

    class SendMessageStepInline(StepChildInline):
        model = SendMessageStep
        fields = (*COMMON_STEP_FIELDS, "template", connection_fields(SendMessageStep))

    class DelayStepInline(StepChildInline):
        model = DelayStep
        fields = (
            *COMMON_STEP_FIELDS,
            "wait_until",
            ("amount", "unit"),
            ("at_time", "weekdays"),
            ("date_attribute", "offset_days"),
            connection_fields(DelayStep),
        )

    class WaitForEventStepInline(StepChildInline):
        model = WaitForEventStep
        fields = (
            *COMMON_STEP_FIELDS,
            "event_name",
            ("data_filter", "correlation_key"),
            ("engagement", "engagement_step"),
            ("timeout_amount", "timeout_unit"),
            connection_fields(WaitForEventStep),
        )

    class ConditionStepInline(StepChildInline):
        model = ConditionStep
        fields = (
            *COMMON_STEP_FIELDS,
            "kind",
            "condition",
            ("attribute", "operator", "value"),
            "event_name",
            connection_fields(ConditionStep),
        )

    class SplitStepInline(StepChildInline):
        model = SplitStep
        fields = (*COMMON_STEP_FIELDS, "branches", connection_fields(SplitStep))

    class RandomSplitStepInline(StepChildInline):
        model = RandomSplitStep
        fields = (*COMMON_STEP_FIELDS, "weights", connection_fields(RandomSplitStep))

    class HoldoutStepInline(StepChildInline):
        model = HoldoutStep
        fields = (*COMMON_STEP_FIELDS, "percent", connection_fields(HoldoutStep))

    class UpdateContactStepInline(StepChildInline):
        model = UpdateContactStep
        fields = (
            *COMMON_STEP_FIELDS,
            "action",
            ("attribute", "value"),
            ("contact_list", "message_type", "channel"),
            connection_fields(UpdateContactStep),
        )

    class StartJourneyStepInline(StepChildInline):
        model = StartJourneyStep
        fields = (*COMMON_STEP_FIELDS, "target", connection_fields(StartJourneyStep))

    class WebhookStepInline(StepChildInline):
        model = WebhookStep
        fields = (
            *COMMON_STEP_FIELDS,
            ("method", "url"),
            "headers",
            "body",
            ("timeout", "retries"),
            ("save_to_attributes", "save_to_data"),
            connection_fields(WebhookStep),
        )

    class NotifyStaffStepInline(StepChildInline):
        model = NotifyStaffStep
        fields = (
            *COMMON_STEP_FIELDS,
            ("recipients", "staff_group"),
            "subject",
            "body",
            connection_fields(NotifyStaffStep),
        )

    class ExitStepInline(StepChildInline):
        model = ExitStep
        fields = COMMON_STEP_FIELDS

    child_inlines = (
        SendMessageStepInline,
        DelayStepInline,
        WaitForEventStepInline,
        ConditionStepInline,
        SplitStepInline,
        RandomSplitStepInline,
        HoldoutStepInline,
        UpdateContactStepInline,
        StartJourneyStepInline,
        WebhookStepInline,
        NotifyStaffStepInline,
        ExitStepInline,
    )

    def connection_keys(self, journey_id) -> dict:
        """{step id: {label: target key}} for the journey's steps, read once."""
        if getattr(self, "_connection_keys", (None,))[0] != journey_id:
            keys = {}
            for step_id, label, key in Connection.objects.filter(
                step__journey_id=journey_id
            ).values_list("step_id", "label", "target__key"):
                keys.setdefault(step_id, {})[label] = key
            self._connection_keys = (journey_id, keys)
        return self._connection_keys[1]

    def get_queryset(self, request):
        steps = super().get_queryset(request).order_by("position", "id")
        if (step_id := focused_step_id(request)) is not None:
            steps = steps.filter(pk=step_id)
        return steps


class JourneyTriggerFormSet(SharedChoicesFormSet, forms.BaseInlineFormSet):
    pass


class JourneyTriggerInline(admin.StackedInline):
    """A journey's entry triggers: a contact who sets off any one of them enters."""

    model = JourneyTrigger
    formset = JourneyTriggerFormSet
    fk_name = "journey"
    extra = 0
    verbose_name = "entry trigger"
    fields = (
        "kind",
        ("event_name", "event_filter"),
        ("contact_list", "segment"),
        ("starts_at", "every", "every_unit"),
        "at_local_time",
        ("date_attribute", "offset_days", "yearly"),
        "source_journey",
        ("channel", "message_type", "subscription_change"),
    )
