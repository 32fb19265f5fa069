"""Exporting a list's members or a segment's matches as CSV, from their admin
pages: streamed, so an audience of millions never sits in memory."""

import csv

from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path
from django.utils.text import slugify

from contacts.models import ContactList, Segment
from contacts.services.exports import contacts_export_rows, list_audience, segment_audience


class _Echo:
    """A file-like object csv.writer writes one line to, handed straight back."""

    def write(self, value):
        return value


def _csv_response(rows, name):
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{slugify(name) or "export"}.csv"'
    response["Cache-Control"] = "no-store"
    return response


def _allowed(request, model):
    opts = model._meta
    return request.user.has_perm("contacts.view_contact") and request.user.has_perm(
        f"{opts.app_label}.view_{opts.model_name}"
    )


def export_list(request, pk):
    if not _allowed(request, ContactList):
        raise PermissionDenied
    contact_list = get_object_or_404(ContactList, pk=pk)
    rows = contacts_export_rows(contacts=list_audience(contact_list=contact_list))
    return _csv_response(rows, f"list-{contact_list.name}")


def export_segment(request, pk):
    if not _allowed(request, Segment):
        raise PermissionDenied
    segment = get_object_or_404(Segment, pk=pk)
    rows = contacts_export_rows(contacts=segment_audience(segment=segment))
    return _csv_response(rows, f"segment-{segment.name}")


def list_export_urls(admin_site):
    """The list export's URL, under the lists' admin (the admin's own staff
    check, then the view's permission check)."""
    return [
        path(
            "<int:pk>/export/",
            admin_site.admin_view(export_list),
            name="contacts_contactlist_export",
        ),
    ]


def segment_export_urls(admin_site):
    """The segment export's URL, under the segments' admin."""
    return [
        path(
            "<int:pk>/export/",
            admin_site.admin_view(export_segment),
            name="contacts_segment_export",
        ),
    ]
