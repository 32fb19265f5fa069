import json
from datetime import datetime, time, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Prefetch, Q
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.text import slugify
from django.utils.translation import gettext
from polymorphic.admin import PolymorphicInlineSupportMixin, StackedPolymorphicInline
from polymorphic.admin.helpers import PolymorphicInlineAdminFormSet
from polymorphic.formsets import BasePolymorphicInlineFormSet

from contacts.admin import BigTableAdmin, ReadOnlyAdminMixin
from contacts.services import contact_find
from journeys.diagram import journey_svg
from journeys.models import (
    ConditionStep,
    Connection,
    DelayStep,
    Enrollment,
    ExitStep,
    HoldoutStep,
    Journey,
    JourneyTrigger,
    NotifyStaffStep,
    RandomSplitStep,
    SendMessageStep,
    SplitStep,
    StartJourneyStep,
    Step,
    StepRun,
    UpdateContactStep,
    WaitForEventStep,
    WebhookStep,
)
from journeys.selectors import journey_step_metrics
from journeys.services.editing import (
    JourneyStateError,
    MoveError,
    enrollments_exit,
    enrollments_move,
    journey_set_state,
    journeys_open_enrollment_counts,
    journeys_sharing_trigger,
    step_open_enrollment_counts,
)
from journeys.services.exchange import JourneyImportError, journey_export, journey_import
from journeys.services.graph import JourneySteps, step_connect
from journeys.services.recovery import RetryError, enrollments_retry_failed
from journeys.services.testing import journey_test_run

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


class StepKeyInput(forms.TextInput):
    """A step key, with this journey's existing keys offered as suggestions
    (a step added on the same page can be named by the key typed for it)."""

    def __init__(self, keys=(), attrs=None):
        super().__init__(attrs={"size": 20, **(attrs or {})})
        self.keys = list(keys)

    def render(self, name, value, attrs=None, renderer=None):
        attrs = {**(attrs or {})}
        list_id = f"{attrs.get('id') or name}-keys"
        attrs["list"] = list_id
        options = format_html_join("", '<option value="{}"></option>', ((k,) for k in self.keys))
        return format_html(
            '{}<datalist id="{}">{}</datalist>',
            super().render(name, value, attrs, renderer),
            list_id,
            options,
        )


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
        self.fields[MOVE_FIELD].widget.keys = [k for k in journey_keys if k != self.instance.key]
        if "position" in self.fields:
            self.fields["position"].required = False
            self.fields["position"].help_text = "Order on the diagram. Empty: after the others."
        if "key" in self.fields:
            self.fields["key"].required = False
            self.fields[
                "key"
            ].help_text = (
                "Short name, unique within the journey. Empty: made from the name or type."
            )
        current = (journey_connections or {}).get(self.instance.pk, {})
        for label in type(self.instance).admin_connection_labels():
            field = self.fields[CONNECTION_FIELD.format(label)]
            field.widget.keys = [key for key in journey_keys if key != self.instance.key]
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


class StepChildInline(StackedPolymorphicInline.Child):
    """Shared by every step type: its own settings, then its connections."""

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


class JourneyImportForm(forms.Form):
    file = forms.FileField(help_text="A journey document, as “Export as JSON” saves it.")
    name = forms.CharField(
        required=False, max_length=200, help_text="Empty: the name the document gives."
    )

    # Journey documents are small; a larger file is not one.
    MAX_BYTES = 2 * 1024 * 1024

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise ValidationError("That file is too large to be a journey document.")
        try:
            self.cleaned_data["document"] = json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValidationError(f"That file is not JSON: {exc}") from None
        return upload


class TestRunForm(forms.Form):
    contact = forms.CharField(
        max_length=255, help_text="The contact to try the journey for: their email or userId."
    )
    send_to = forms.EmailField(
        required=False,
        label="Send tests to",
        help_text="Each send step sends its template here, as a test. Empty: nothing is sent.",
    )
    events_happen = forms.BooleanField(
        required=False,
        label="Awaited events happen",
        help_text="Waits for an event take their “event” branch (else their “timeout” branch).",
    )
    trigger_data = forms.JSONField(
        required=False,
        initial=dict,
        help_text='The triggering event\'s data, as JSON, e.g. {"cartId": "c-1"}.',
    )

    def clean_contact(self):
        typed = self.cleaned_data["contact"].strip()
        contact = contact_find(email=typed) if "@" in typed else None
        contact = contact or contact_find(user_id=typed)
        if contact is None:
            raise ValidationError(f"No contact has the email or userId “{typed}”.")
        return contact

    def clean_trigger_data(self):
        data = self.cleaned_data.get("trigger_data") or {}
        if not isinstance(data, dict):
            raise ValidationError('Give a JSON object, e.g. {"cartId": "c-1"}.')
        return data


class DiagramPeriodForm(forms.Form):
    """The dates the diagram's message figures cover (the last 30 days unless chosen)."""

    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def bounds(self):
        today = timezone.localdate()
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        until = data.get("until") or today
        since = data.get("since") or until - timedelta(days=29)
        zone = timezone.get_current_timezone()
        return (
            datetime.combine(since, time.min, tzinfo=zone),
            datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone),
        )


class StepFormSet(BasePolymorphicInlineFormSet):
    def _kept_forms(self):
        return [
            form
            for form in self.forms
            if hasattr(form, "cleaned_data") and not self._should_delete_form(form)
        ]

    def clean(self):
        super().clean()
        kept = self._kept_forms()
        self._fill_positions_and_keys(kept)
        # Step type forms leave out `journey`, so Django cannot check the
        # (journey, key) constraint itself; every step of the journey is in
        # this formset, so checking here covers it.
        seen = set()
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
        last = max((form.instance.position or 0 for form in kept), default=0)
        taken = {form.cleaned_data.get("key") for form in kept} - {None, ""}
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
            form.instance.key: form.instance for form in self._kept_forms() if form.instance.pk
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
    keep the verbose name as written, like the type menu under it."""

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

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("position", "id")


class JourneyTriggerInline(admin.StackedInline):
    """A journey's entry triggers: a contact who sets off any one of them enters."""

    model = JourneyTrigger
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


@admin.register(Journey)
class JourneyAdmin(PolymorphicInlineSupportMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "folder",
        "state",
        "trigger_summary",
        "open_enrollments",
        "finished_enrollments",
        "updated_at",
    )
    list_filter = ("state", "folder", "triggers__kind")
    search_fields = ("name", "description", "triggers__event_name")
    readonly_fields = ("created_by", "modified_by", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "folder", "description", "state")}),
        (
            "Entry",
            {
                "fields": ("reentry", "reentry_period_days", "audience"),
                "description": "Contacts enter when one of the entry triggers below fires, "
                "if they match the audience and the re-entry policy lets them.",
            },
        ),
        ("Exit and goal", {"fields": ("exit_event_name", "goal_event_name", "goal_window_days")}),
        ("History", {"fields": readonly_fields, "classes": ("collapse",)}),
    )
    inlines = (JourneyTriggerInline, StepInline)
    save_on_top = True

    def get_readonly_fields(self, request, obj=None):
        # A journey's state changes only through the lifecycle actions, which
        # check who asks and whether the journey may go live; a new one is a draft.
        return ("state", *self.readonly_fields)

    def has_activate_permission(self, request):
        """Going live, pausing and archiving (the "Journey managers" role)."""
        return request.user.has_perm("journeys.activate_journey")

    def _manages(self, request, obj):
        # Drafters edit drafts; a journey contacts may be in is managers' to change.
        return (
            obj is None or obj.state == Journey.State.DRAFT or self.has_activate_permission(request)
        )

    def has_change_permission(self, request, obj=None):
        return self._manages(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._manages(request, obj) and super().has_delete_permission(request, obj)

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, StepInline):
            keys, connections = [], {}
            if obj and obj.pk:
                keys = list(obj.steps.values_list("key", flat=True))
                for step_id, label, key in Connection.objects.filter(step__journey=obj).values_list(
                    "step_id", "label", "target__key"
                ):
                    connections.setdefault(step_id, {})[label] = key
            kwargs["form_kwargs"] = {
                **kwargs.get("form_kwargs", {}),
                "journey_keys": keys,
                "journey_connections": connections,
            }
        return kwargs

    def save_formset(self, request, form, formset, change):
        if isinstance(formset, StepFormSet):
            formset.move_contacts_off_deleted_steps()
        super().save_formset(request, form, formset, change)
        if isinstance(formset, StepFormSet):
            formset.save_connections()

    def get_inline_formsets(self, request, formsets, inline_instances, obj=None):
        inline_admin_formsets = super().get_inline_formsets(
            request, formsets, inline_instances, obj
        )
        for inline_admin_formset in inline_admin_formsets:
            if isinstance(inline_admin_formset.opts, StepInline):
                inline_admin_formset.__class__ = StepInlineAdminFormSet
        return inline_admin_formsets

    def get_queryset(self, request):
        open_states = list(Enrollment.OPEN_STATES)
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch(
                    "triggers",
                    queryset=JourneyTrigger.objects.select_related(
                        "contact_list", "segment", "source_journey", "channel", "message_type"
                    ),
                )
            )
            .annotate(
                open_count=Count("enrollments", filter=Q(enrollments__state__in=open_states)),
                finished_count=Count("enrollments", filter=~Q(enrollments__state__in=open_states)),
            )
        )

    @admin.display(description="Trigger")
    def trigger_summary(self, obj):
        return "; ".join(trigger.summary for trigger in obj.triggers.all()) or "—"

    @admin.display(description="In journey", ordering="open_count")
    def open_enrollments(self, obj):
        return obj.open_count

    @admin.display(description="Finished", ordering="finished_count")
    def finished_enrollments(self, obj):
        return obj.finished_count

    actions = ("go_live", "pause", "archive", "export_json")
    change_list_template = "admin/journeys/journey/change_list.html"

    def get_urls(self):
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="journeys_journey_import",
            ),
            path(
                "<path:object_id>/test/",
                self.admin_site.admin_view(self.test_run_view),
                name="journeys_journey_test_run",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The journey's page opens on its diagram, with each step's figures."""
        journey = self.get_object(request, object_id)
        if journey is not None:
            period = DiagramPeriodForm(request.GET or None)
            since, until = period.bounds()
            extra_context = {
                **(extra_context or {}),
                "diagram": journey_svg(
                    steps=JourneySteps.load(journey.pk),
                    metrics=journey_step_metrics(journey=journey, since=since, until=until),
                    link=lambda node: f"#steps-{node.index}",
                ),
                "diagram_period": period,
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def test_run_view(self, request, object_id):
        """Try the journey for one contact: the path taken, nothing kept."""
        journey = self.get_object(request, object_id)
        if journey is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, journey):
            raise PermissionDenied
        form = TestRunForm(
            request.POST or None, initial={"send_to": request.user.email, "trigger_data": {}}
        )
        trial = None
        if request.method == "POST" and form.is_valid():
            trial = journey_test_run(
                journey=journey,
                contact=form.cleaned_data["contact"],
                send_to=form.cleaned_data["send_to"],
                events_happen=form.cleaned_data["events_happen"],
                trigger_data=form.cleaned_data["trigger_data"],
            )
        return TemplateResponse(
            request,
            "admin/journeys/journey/test_run.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Test run of “{journey}”",
                "opts": self.model._meta,
                "original": journey,
                "form": form,
                "trial": trial,
            },
        )

    def import_view(self, request):
        """Create a journey, as a draft, from a document export_json made."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = JourneyImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                journey = journey_import(
                    document=form.cleaned_data["document"],
                    name=form.cleaned_data["name"] or None,
                    actor=request.user,
                )
            except JourneyImportError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Imported “{journey}” as a draft.", messages.SUCCESS)
                return redirect("admin:journeys_journey_change", journey.pk)
        return TemplateResponse(
            request,
            "admin/journeys/journey/import.html",
            {
                **self.admin_site.each_context(request),
                "title": "Import a journey",
                "opts": self.model._meta,
                "form": form,
            },
        )

    @admin.action(description="Export as JSON (one journey)", permissions=["view"])
    def export_json(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Export one journey at a time.", messages.ERROR)
            return None
        journey = queryset.get()
        response = HttpResponse(
            json.dumps(journey_export(journey=journey), indent=2, ensure_ascii=False),
            content_type="application/json",
        )
        filename = slugify(journey.name) or f"journey-{journey.pk}"
        response["Content-Disposition"] = f'attachment; filename="{filename}.json"'
        return response

    def _set_state(self, request, queryset, state):
        changed = 0
        for journey in queryset:
            try:
                journey_set_state(journey=journey, state=state, actor=request.user)
                changed += 1
            except JourneyStateError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            live = state == Journey.State.LIVE
            if live and (others := journeys_sharing_trigger(journey=journey)):
                names = ", ".join(f"“{other}”" for other in others)
                self.message_user(
                    request,
                    f"“{journey}” starts on {self.trigger_summary(journey)}, like the live "
                    f"{'journey' if len(others) == 1 else 'journeys'} {names}: a contact "
                    "who sets it off enters each of them.",
                    messages.WARNING,
                )
        if changed:
            label = Journey.State(state).label.lower()
            self.message_user(request, f"{changed} journey(s) now {label}.", messages.SUCCESS)

    @admin.action(description="Go live with selected journeys", permissions=["activate"])
    def go_live(self, request, queryset):
        self._set_state(request, queryset, Journey.State.LIVE)

    @admin.action(description="Pause selected journeys", permissions=["activate"])
    def pause(self, request, queryset):
        self._set_state(request, queryset, Journey.State.PAUSED)

    @admin.action(description="Archive selected journeys", permissions=["activate"])
    def archive(self, request, queryset):
        counts = journeys_open_enrollment_counts(journey_ids=queryset.values_list("pk", flat=True))
        if request.POST.get("confirmed") == "yes" or not any(counts.values()):
            self._set_state(request, queryset, Journey.State.ARCHIVED)
            if exited := sum(counts.values()):
                self.message_user(
                    request, f"{exited} contact(s) left the archived journeys.", messages.INFO
                )
            return None
        # Contacts are still inside: say how many leave before anyone does.
        journeys = list(queryset)
        return TemplateResponse(
            request,
            "admin/journeys/journey/archive_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "title": "Archive journeys",
                "opts": self.model._meta,
                "journeys": [(journey, counts.get(journey.pk, 0)) for journey in journeys],
                "total": sum(counts.values()),
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        obj.modified_by = request.user
        super().save_model(request, obj, form, change)


class StepRunInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = StepRun
    fields = ("sequence", "step", "outcome", "branch", "message", "detail", "error", "started_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("sequence", "id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("step", "message__template")


class StepFilter(admin.SimpleListFilter):
    """Steps of the journey chosen in the journey filter (only then: a list of
    every step of every journey would be long and slow)."""

    title = "step"
    parameter_name = "step"

    def lookups(self, request, model_admin):
        journey_id = request.GET.get("journey__id__exact")
        if not journey_id or not journey_id.isdigit():
            return []
        return [
            (step.pk, str(step))
            for step in Step.objects.non_polymorphic().filter(journey_id=journey_id)
        ]

    def queryset(self, request, queryset):
        if self.value() and self.value().isdigit():
            return queryset.filter(current_step_id=self.value())
        return queryset


class MoveForm(forms.Form):
    to_step = forms.ModelChoiceField(queryset=Step.objects.none(), label="Move them to")

    def __init__(self, *args, journey_id, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to_step"].queryset = (
            Step.objects.non_polymorphic().filter(journey_id=journey_id).order_by("position")
        )


@admin.register(Enrollment)
class EnrollmentAdmin(BigTableAdmin):
    list_display = (
        "contact",
        "journey",
        "state",
        "current_step",
        "next_run_at",
        "entered_at",
        "finished_at",
        "error",
    )
    list_filter = ("state", "journey", StepFilter)
    list_select_related = ("contact", "journey", "current_step")
    autocomplete_fields = ("contact",)
    actions = ("exit_selected", "move_selected", "retry_failed")
    readonly_fields = (
        "journey",
        "contact",
        "state",
        "current_step",
        "sequence",
        "attempts",
        "next_run_at",
        "wait_event_name",
        "wait_timeout_at",
        "locked_until",
        "lease_token",
        "trigger_data",
        "entered_at",
        "finished_at",
        "exit_reason",
        "goal_reached_at",
        "holdout",
        "last_error",
    )
    inlines = (StepRunInline,)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Exit selected contacts from their journey", permissions=["exit"])
    def exit_selected(self, request, queryset):
        count = enrollments_exit(
            enrollments=queryset, reason=f"exited from the admin by {request.user}"
        )
        self.message_user(request, f"{count} contact(s) left their journey.", messages.SUCCESS)

    @admin.action(description="Move selected contacts to another step…", permissions=["exit"])
    def move_selected(self, request, queryset):
        journey_ids = set(queryset.values_list("journey_id", flat=True).distinct()[:2])
        if len(journey_ids) != 1:
            self.message_user(request, "Choose contacts of one journey to move.", messages.ERROR)
            return None
        form = MoveForm(
            request.POST if "to_step" in request.POST else None, journey_id=journey_ids.pop()
        )
        if form.is_valid():
            try:
                count = enrollments_move(enrollments=queryset, to_step=form.cleaned_data["to_step"])
            except MoveError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return None
            self.message_user(
                request,
                f"{count} contact(s) moved to “{form.cleaned_data['to_step']}”.",
                messages.SUCCESS,
            )
            return None
        return TemplateResponse(
            request,
            "admin/journeys/enrollment/move.html",
            {
                **self.admin_site.each_context(request),
                "title": "Move contacts to another step",
                "opts": self.model._meta,
                "form": form,
                "queryset": queryset,
                "count": queryset.count(),
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(description="Retry the failed step for selected contacts", permissions=["exit"])
    def retry_failed(self, request, queryset):
        try:
            outcome = enrollments_retry_failed(enrollments=queryset)
        except RetryError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if outcome.retried:
            self.message_user(
                request,
                f"{outcome.retried} contact(s) put back on their failed step; "
                "it runs again at the next scheduler pass.",
                messages.SUCCESS,
            )
        if outcome.refused:
            self.message_user(
                request,
                f"{outcome.refused} contact(s) left as they were: only a failed enrollment "
                "can be retried, not one of an archived journey or whose contact is in the "
                "journey again.",
                messages.WARNING,
            )

    @admin.display(description="Last error")
    def error(self, obj):
        # The first line says what went wrong; the enrollment's page has all of it.
        return obj.last_error.splitlines()[0][:120] if obj.last_error else ""

    def has_exit_permission(self, request):
        # Moving contacts is editing the journey they are on.
        return request.user.has_perm("journeys.change_journey")


@admin.register(StepRun)
class StepRunAdmin(ReadOnlyAdminMixin, BigTableAdmin):
    list_display = ("enrollment", "step", "outcome", "branch", "message", "started_at")
    list_filter = ("outcome",)
    contact_lookup = "enrollment__contact"
    list_select_related = (
        "enrollment__contact",
        "enrollment__journey",
        "step",
        "message__template",
        "message__contact",
    )
    raw_id_fields = ("enrollment", "message")
