import csv

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from imports.forms import MappingForm, UploadForm
from imports.models import Import
from imports.services import (
    ImportError_,
    import_delete,
    import_error_rows,
    import_map,
    import_start,
    import_upload,
)


class _Echo:
    """A file-like object csv.writer writes one line to, handed straight back."""

    def write(self, value):
        return value


@admin.register(Import)
class ImportAdmin(admin.ModelAdmin):
    """CSV imports into lists. Adding one is uploading a file (from a list's
    page, or here); its page then walks through mapping the columns, the dry
    run's report and the import's progress."""

    list_display = (
        "original_name",
        "contact_list",
        "status",
        "progress",
        "created_by",
        "created_at",
    )
    list_filter = ("status",)
    list_select_related = ("contact_list", "created_by")
    search_fields = ("original_name",)

    @admin.display(description="Progress")
    def progress(self, obj):
        return f"{obj.percent} %"

    def delete_model(self, request, obj):
        try:
            import_delete(an_import=obj)
        except ImportError_ as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def delete_queryset(self, request, queryset):
        for an_import in queryset:
            self.delete_model(request, an_import)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/mapping/", view(self.mapping_view), name="imports_import_mapping"),
            path("<int:pk>/run/", view(self.run_view), name="imports_import_run"),
            path("<int:pk>/status/", view(self.status_view), name="imports_import_status"),
            path("<int:pk>/errors.csv", view(self.errors_view), name="imports_import_errors"),
            *super().get_urls(),
        ]

    def _get(self, request, pk, *, change=False):
        an_import = get_object_or_404(Import.objects.select_related("contact_list"), pk=pk)
        allowed = (
            self.has_change_permission(request, an_import)
            if change
            else self.has_view_permission(request, an_import)
        )
        if not allowed:
            raise PermissionDenied
        return an_import

    def _render(self, request, template, title, context):
        return TemplateResponse(
            request,
            f"admin/imports/import/{template}",
            {**self.admin_site.each_context(request), "title": title, "opts": self.model._meta}
            | context,
        )

    # --- upload (the admin's "add")

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial = {"contact_list": request.GET.get("contact_list")}
        form = UploadForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
            initial=initial,
        )
        # Set while the body is read (imports.uploads), so after request.POST.
        too_large = getattr(request, "import_upload_too_large", None)
        problem = ""
        if too_large:
            # The file never arrived: say why, without "this field is required".
            form = UploadForm(initial={"contact_list": request.POST.get("contact_list")})
            problem = self._too_large_message(too_large)
        elif request.method == "POST" and form.is_valid():
            try:
                an_import = import_upload(
                    contact_list=form.cleaned_data["contact_list"],
                    uploaded=form.cleaned_data["file"],
                    user=request.user,
                )
            except ImportError_ as exc:
                form.add_error("file", str(exc))
            else:
                if an_import.problem:
                    return redirect("admin:imports_import_change", an_import.pk)
                return redirect("admin:imports_import_mapping", an_import.pk)
        return self._render(
            request,
            "upload.html",
            "Import contacts from a CSV file",
            {"form": form, "problem": problem},
        )

    @staticmethod
    def _too_large_message(size):
        from django.conf import settings

        limit = settings.WAYMARK_IMPORT["MAX_BYTES"]
        return (
            f"The file is too large: about {size:,} bytes, and imports take at most {limit:,} "
            "bytes (WAYMARK_IMPORT_MAX_BYTES). Split it into smaller files."
        )

    # --- mapping the columns, then the dry run

    def mapping_view(self, request, pk):
        an_import = self._get(request, pk, change=True)
        if an_import.is_running or an_import.status == Import.Status.DONE:
            return redirect("admin:imports_import_change", an_import.pk)
        if not an_import.header:
            return redirect("admin:imports_import_change", an_import.pk)
        form = MappingForm(request.POST if request.method == "POST" else None, an_import=an_import)
        if request.method == "POST" and form.is_valid():
            try:
                import_map(
                    an_import=an_import,
                    mapping=form.mapping(),
                    encoding=form.cleaned_data["encoding"],
                )
            except ImportError_ as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("admin:imports_import_change", an_import.pk)
        return self._render(
            request,
            "mapping.html",
            f"Map the columns of {an_import.original_name}",
            {"form": form, "original": an_import},
        )

    # --- the import's page: report, run button, progress

    def change_view(self, request, object_id, form_url="", extra_context=None):
        try:
            pk = int(object_id)
        except ValueError:
            raise Http404 from None
        an_import = self._get(request, pk)
        return self._render(
            request,
            "status.html",
            f"Import of {an_import.original_name}",
            {
                "original": an_import,
                "can_change": self.has_change_permission(request, an_import),
                "status_url": reverse("admin:imports_import_status", args=[an_import.pk]),
            },
        )

    def run_view(self, request, pk):
        return require_POST(self._run)(request, pk)

    def _run(self, request, pk):
        an_import = self._get(request, pk, change=True)
        try:
            import_start(
                an_import=an_import, skip_bad_rows=request.POST.get("skip_bad_rows") == "yes"
            )
        except ImportError_ as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, "The import has started.", messages.SUCCESS)
        return redirect("admin:imports_import_change", an_import.pk)

    def status_view(self, request, pk):
        return JsonResponse(_status(self._get(request, pk)))

    def errors_view(self, request, pk):
        an_import = self._get(request, pk)
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in import_error_rows(an_import=an_import)),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="import-{an_import.pk}-errors.csv"'
        return response


def _status(an_import):
    return {
        "status": an_import.status,
        "status_display": an_import.get_status_display(),
        "percent": an_import.percent,
        "running": an_import.is_running,
        "rows_done": an_import.rows_done,
        "created": an_import.created,
        "updated": an_import.updated,
        "joined": an_import.joined,
        "skipped": an_import.skipped,
        "consent_changes": an_import.consent_changes,
        "problem": an_import.problem,
    }
