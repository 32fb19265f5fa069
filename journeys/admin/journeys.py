"""The journey list and each journey's page: lifecycle, import, export, test runs."""

import json

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.text import slugify
from polymorphic.admin import PolymorphicInlineSupportMixin

from journeys.admin.analytics import JourneyAnalyticsMixin
from journeys.admin.diagram_page import JourneyDiagramPageMixin
from journeys.admin.forms import JourneyImportForm, TestRunForm
from journeys.admin.steps import (
    FOCUS_PARAMETER,
    JourneyTriggerInline,
    StepFormSet,
    StepInline,
    StepInlineAdminFormSet,
    focused_step_id,
)
from journeys.models import (
    Connection,
    Journey,
    JourneyTrigger,
    Step,
)
from journeys.models.journey import FOLDER_SEPARATOR, folder_parts
from journeys.selectors import journey_folder_tree, journeys_list_figures
from journeys.services.copying import JourneyCopyError, journey_copy
from journeys.services.editing import (
    JourneyStateError,
    journey_set_state,
    journeys_open_enrollment_counts,
    journeys_sharing_trigger,
)
from journeys.services.exchange import JourneyImportError, journey_export, journey_import
from journeys.services.testing import journey_test_run


class FolderFilter(admin.SimpleListFilter):
    """Browse by folder: a folder lists its own journeys and those of the
    folders inside it ("Onboarding" holds "Onboarding/Trials")."""

    title = "folder"
    parameter_name = "folder"
    NO_FOLDER = FOLDER_SEPARATOR  # no folder can be called "/": its parts are blank

    def lookups(self, request, model_admin):
        return [
            (self.NO_FOLDER, "No folder"),
            *(
                (folder.path, f"{'· ' * folder.depth}{folder.name} ({folder.count})")
                for folder in model_admin.folder_tree(request)
            ),
        ]

    def queryset(self, request, queryset):
        folder = self.value()
        if folder is None:
            return queryset
        if folder == self.NO_FOLDER:
            return queryset.filter(folder="")
        folder = FOLDER_SEPARATOR.join(folder_parts(folder))
        return queryset.filter(Q(folder=folder) | Q(folder__startswith=folder + FOLDER_SEPARATOR))


class JourneyChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # The figure columns, for the journeys on this page only, in a fixed
        # number of queries, from the maintained tallies.
        self.result_list = list(self.result_list)
        figures = journeys_list_figures(journey_ids=[journey.pk for journey in self.result_list])
        for journey in self.result_list:
            journey.figures = figures[journey.pk]

    def url_for_result(self, result):
        # A journey opens on its diagram; the editor is a link from there.
        return reverse("admin:journeys_journey_diagram", args=[result.pk])


@admin.register(Journey)
class JourneyAdmin(
    JourneyAnalyticsMixin,
    JourneyDiagramPageMixin,
    PolymorphicInlineSupportMixin,
    admin.ModelAdmin,
):
    list_display = (
        "name",
        "folder_link",
        "state",
        "trigger_summary",
        # The figure columns (journeys_list_figures):
        "inside_now",
        "messages_sent",
        "conversions",
        "analytics_link",
        "last_modified",
    )
    list_filter = ("state", FolderFilter, "triggers__kind")
    list_select_related = ("modified_by",)
    search_fields = ("name", "folder", "description", "triggers__event_name")
    search_help_text = "Part of a journey's name, folder or description, or an event it starts on."
    sortable_by = ("name", "folder_link", "state", "last_modified")
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

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The editor: every step's form, or, opened from a step on the
        diagram (`?step=<id>`), that step's form alone beside the journey's
        settings, so a step of a long journey opens at once."""
        step_id = focused_step_id(request)
        if step_id is not None and unquote(object_id).isdigit():
            step = (
                Step.objects.non_polymorphic()
                .filter(pk=step_id, journey_id=unquote(object_id))
                .only("pk", "key", "name")
                .first()
            )
            if step is None:
                # A step since deleted, or of another journey: the whole editor.
                self.message_user(
                    request, "That step is no longer in this journey.", messages.WARNING
                )
                return redirect("admin:journeys_journey_change", unquote(object_id))
            extra_context = {
                **(extra_context or {}),
                "focused_step": step,
                "whole_editor_url": reverse(
                    "admin:journeys_journey_change", args=[step.journey_id]
                ),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if focused_step_id(request) is None:
            return fieldsets
        # On one step's page the journey's own settings are there, folded.
        return [
            (name, {**options, "classes": (*options.get("classes", ()), "collapse")})
            if "collapse" not in options.get("classes", ())
            else (name, options)
            for name, options in fieldsets
        ]

    def get_inline_instances(self, request, obj=None):
        inlines = super().get_inline_instances(request, obj)
        if focused_step_id(request) is not None:
            for inline in inlines:
                if isinstance(inline, JourneyTriggerInline):
                    inline.classes = ("collapse",)
        return inlines

    def response_change(self, request, obj):
        response = super().response_change(request, obj)
        step_id = focused_step_id(request)
        if step_id is None or not isinstance(response, HttpResponseRedirect):
            return response
        if "_continue" in request.POST:
            # Stay on the step (Django's redirect keeps no query string).
            query = urlencode({FOCUS_PARAMETER: step_id})
            return redirect(f"{reverse('admin:journeys_journey_change', args=[obj.pk])}?{query}")
        if {"_addanother", "_saveasnew"}.isdisjoint(request.POST):
            # Back where the step was opened from, at the step.
            diagram = reverse("admin:journeys_journey_diagram", args=[obj.pk])
            return redirect(f"{diagram}#diagram-step-{step_id}")
        return response

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
        )

    def get_changelist(self, request, **kwargs):
        return JourneyChangeList

    def folder_tree(self, request):
        """The folder tree, read once per request (the filter and the breadcrumb share it)."""
        if not hasattr(request, "_journey_folder_tree"):
            request._journey_folder_tree = journey_folder_tree()
        return request._journey_folder_tree

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), **self._folder_context(request)}
        return super().changelist_view(request, extra_context)

    def _folder_context(self, request):
        """The breadcrumb of the folder being browsed, and the folders inside it."""
        chosen = request.GET.get(FolderFilter.parameter_name)
        if chosen == FolderFilter.NO_FOLDER:
            return {"folder_crumbs": [], "subfolders": [], "browsing_folder": True}
        parts = folder_parts(chosen or "")
        current = FOLDER_SEPARATOR.join(parts)

        def url(folder):
            params = request.GET.copy()
            params.pop("p", None)
            params.pop(FolderFilter.parameter_name, None)
            if folder:
                params[FolderFilter.parameter_name] = folder
            return f"?{params.urlencode()}" if params else "?"

        tree = self.folder_tree(request)
        counts = {folder.path: folder.count for folder in tree}
        crumbs = []
        for depth, name in enumerate(parts):
            path = FOLDER_SEPARATOR.join(parts[: depth + 1])
            crumbs.append((name, url(path), counts.get(path, 0)))
        subfolders = [
            (folder.name, url(folder.path), folder.count)
            for folder in tree
            if folder.depth == len(parts) and folder_parts(folder.path)[:-1] == parts
        ]
        return {
            "folder_crumbs": crumbs,
            "folders_root_url": url(""),
            "subfolders": subfolders,
            "browsing_folder": bool(current),
        }

    @admin.display(description="Folder", ordering="folder")
    def folder_link(self, obj):
        if not obj.folder:
            return "—"
        return format_html(
            '<a href="?{}">{}</a>', urlencode({FolderFilter.parameter_name: obj.folder}), obj.folder
        )

    @admin.display(description="Trigger")
    def trigger_summary(self, obj):
        return "; ".join(trigger.summary for trigger in obj.triggers.all()) or "—"

    @admin.display(description="Inside now")
    def inside_now(self, obj):
        return obj.figures.inside

    @admin.display(description="Messages sent")
    def messages_sent(self, obj):
        return obj.figures.sent

    @admin.display(description="Conversions")
    def conversions(self, obj):
        return obj.figures.conversions

    @admin.display(description="Last modified", ordering="updated_at")
    def last_modified(self, obj):
        when = date_format(timezone.localtime(obj.updated_at), "DATETIME_FORMAT")
        if obj.modified_by is None:
            return when
        return format_html("{}<br><small>by {}</small>", when, obj.modified_by.get_username())

    actions = ("copy", "go_live", "pause", "archive", "export_json")
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
            *self.analytics_urls(),
            *super().get_urls(),
        ]

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
        counts = journeys_open_enrollment_counts(
            journey_ids=queryset.exclude(state=Journey.State.LIVE).values_list("pk", flat=True)
        )
        if request.POST.get("confirmed") == "yes" or not any(counts.values()):
            self._set_state(request, queryset, Journey.State.LIVE)
            return None
        # Contacts held in a paused journey carry on once it is live: say how many first.
        return self._confirmation(
            request, queryset, counts, "go_live", "Go live", "go_live_confirmation.html"
        )

    @admin.action(description="Pause selected journeys", permissions=["activate"])
    def pause(self, request, queryset):
        counts = journeys_open_enrollment_counts(journey_ids=queryset.values_list("pk", flat=True))
        if request.POST.get("confirmed") == "yes" or not any(counts.values()):
            self._set_state(request, queryset, Journey.State.PAUSED)
            return None
        # Contacts are inside: say how many stop where they are before they do.
        return self._confirmation(
            request, queryset, counts, "pause", "Pause journeys", "pause_confirmation.html"
        )

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
        return self._confirmation(
            request, queryset, counts, "archive", "Archive journeys", "archive_confirmation.html"
        )

    def _confirmation(self, request, queryset, counts, action, title, template):
        journeys = list(queryset)
        return TemplateResponse(
            request,
            f"admin/journeys/journey/{template}",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "opts": self.model._meta,
                "action": action,
                "journeys": [(journey, counts.get(journey.pk, 0)) for journey in journeys],
                "total": sum(counts.values()),
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(description="Copy selected journeys (as drafts)", permissions=["add"])
    def copy(self, request, queryset):
        for journey in queryset.order_by("name"):
            try:
                copy = journey_copy(journey=journey, actor=request.user)
            except JourneyCopyError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(
                request,
                format_html(
                    'Copied “{}” as the draft <a href="{}">{}</a>.',
                    journey,
                    reverse("admin:journeys_journey_change", args=[copy.pk]),
                    copy,
                ),
                messages.SUCCESS,
            )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        obj.modified_by = request.user
        super().save_model(request, obj, form, change)
