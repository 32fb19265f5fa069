"""Enrollments and step runs: where contacts are, and what each step did."""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from contacts.admin import BigTableAdmin, ReadOnlyAdminMixin
from journeys.admin_filters import EnrollmentAttentionFilter
from journeys.models import (
    Enrollment,
    Step,
    StepRun,
)
from journeys.services.editing import (
    MoveError,
    enrollments_exit,
    enrollments_move,
)
from journeys.services.recovery import RetryError, enrollments_retry_failed


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
    list_filter = ("state", EnrollmentAttentionFilter, "journey", StepFilter)
    list_select_related = ("contact", "journey", "current_step")
    # Newest first by id: entered_at has no index, and sorting by it reads every row.
    ordering = ("-pk",)
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
        "exit_kind",
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
            enrollments=queryset,
            reason=f"exited from the admin by {request.user}",
            kind=Enrollment.ExitKind.ADMIN,
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
    # Newest first by id: started_at has no index, and sorting by it reads every row.
    ordering = ("-pk",)
    contact_lookup = "enrollment__contact"
    list_select_related = (
        "enrollment__contact",
        "enrollment__journey",
        "step",
        "message__template",
        "message__contact",
    )
    raw_id_fields = ("enrollment", "message")
