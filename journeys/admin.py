import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Prefetch, Q
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode
from django.utils.text import slugify
from django.utils.translation import gettext
from polymorphic.admin import PolymorphicInlineSupportMixin, StackedPolymorphicInline
from polymorphic.admin.helpers import PolymorphicInlineAdminFormSet
from polymorphic.formsets import BasePolymorphicInlineFormSet

from contacts.admin import BigTableAdmin, ReadOnlyAdminMixin
from journeys.models import (
    ConditionStep,
    DelayStep,
    Enrollment,
    ExitStep,
    Journey,
    JourneyTrigger,
    SendMessageStep,
    StartJourneyStep,
    Step,
    StepRun,
    UpdateContactStep,
)
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

STEP_LINK_FIELDS = {"next_step", "yes_step", "no_step"}
COMMON_STEP_FIELDS = ("position", "key", "name")


class StepChildInline(StackedPolymorphicInline.Child):
    """Shared by every step type: links to other steps offer only this journey's steps."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in STEP_LINK_FIELDS:
            journey_id = request.resolver_match.kwargs.get("object_id")
            kwargs["queryset"] = (
                Step.objects.non_polymorphic().filter(journey_id=journey_id).order_by("position")
                if journey_id
                else Step.objects.none()
            )
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


class StepFormSet(BasePolymorphicInlineFormSet):
    def clean(self):
        # Step type forms leave out `journey`, so Django cannot check the
        # (journey, key) constraint itself; every step of the journey is in
        # this formset, so checking here covers it.
        super().clean()
        seen = set()
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or self._should_delete_form(form):
                continue
            key = form.cleaned_data.get("key")
            if key in seen:
                form.add_error("key", f"Another step of this journey already uses the key “{key}”.")
            seen.add(key)
        self._refuse_deleting_occupied_steps()

    def _refuse_deleting_occupied_steps(self):
        """A step with contacts on it cannot vanish: they must be moved or exited first."""
        doomed = {
            form.instance.pk: form.instance
            for form in self.forms
            if form.instance.pk and self.can_delete and self._should_delete_form(form)
        }
        if not doomed:
            return
        counts = step_open_enrollment_counts(step_ids=list(doomed))
        problems = []
        for step_id, count in counts.items():
            url = (
                reverse("admin:journeys_enrollment_changelist")
                + "?"
                + urlencode({"journey__id__exact": doomed[step_id].journey_id, "step": step_id})
            )
            problems.append(
                f"{count} contact(s) are on step “{doomed[step_id].key}”. Move them to "
                f"another step or exit them first (Enrollments: {url}), then delete it."
            )
        if problems:
            raise ValidationError(problems)


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
        fields = (*COMMON_STEP_FIELDS, "template", "next_step")

    class DelayStepInline(StepChildInline):
        model = DelayStep
        fields = (
            *COMMON_STEP_FIELDS,
            "wait_until",
            ("amount", "unit"),
            ("at_time", "weekdays"),
            ("date_attribute", "offset_days"),
            "next_step",
        )

    class ConditionStepInline(StepChildInline):
        model = ConditionStep
        fields = (
            *COMMON_STEP_FIELDS,
            "kind",
            ("attribute", "operator", "value"),
            "event_name",
            ("yes_step", "no_step"),
        )

    class UpdateContactStepInline(StepChildInline):
        model = UpdateContactStep
        fields = (
            *COMMON_STEP_FIELDS,
            "action",
            ("attribute", "value"),
            ("contact_list", "message_type", "channel"),
            "next_step",
        )

    class StartJourneyStepInline(StepChildInline):
        model = StartJourneyStep
        fields = (*COMMON_STEP_FIELDS, "target", "next_step")

    class ExitStepInline(StepChildInline):
        model = ExitStep
        fields = COMMON_STEP_FIELDS

    child_inlines = (
        SendMessageStepInline,
        DelayStepInline,
        ConditionStepInline,
        UpdateContactStepInline,
        StartJourneyStepInline,
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
        ("Exit and goal", {"fields": ("exit_event_name", "goal_event_name")}),
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
            *super().get_urls(),
        ]

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
    )
    list_filter = ("state", "journey", StepFilter)
    list_select_related = ("contact", "journey", "current_step")
    raw_id_fields = ("contact",)
    actions = ("exit_selected", "move_selected")
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
