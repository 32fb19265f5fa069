"""The contact page in the admin: one contact's attributes, lists, what other
apps show about them (panels), and their timeline.

Apps above contacts add panels (subscriptions and consent, say) with
`register_panel` and timeline sources with `contacts.timeline.register`,
from their own modules: contacts never imports them.
"""

import json
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from contacts import timeline
from contacts.models import ListMembership

# Lists shown on the page; a contact in more gets a link to all of them.
LISTS_SHOWN = 100


class Panel:
    """A box on the contact page. `context(contact, user)` gives what `template`
    reads; `permission` ("app.codename") hides it from staff who may not see it."""

    name = ""
    title = ""
    template = ""
    permission = ""
    order = 100

    def visible_to(self, user) -> bool:
        return not self.permission or user.has_perm(self.permission)

    def context(self, contact, user) -> dict:
        raise NotImplementedError


_panels: dict[str, Panel] = {}


def register_panel(panel: Panel) -> Panel:
    _panels[panel.name] = panel
    return panel


@dataclass(frozen=True)
class Attribute:
    name: str
    value: str
    # Shown as formatted JSON (a list or an object), not a plain value.
    structured: bool


def readable_attributes(attributes) -> list[Attribute]:
    """The contact's attributes by name, each value as a person would read it."""
    if not isinstance(attributes, dict):
        return []
    shown = []
    for name in sorted(attributes, key=str.lower):
        value = attributes[name]
        if isinstance(value, dict | list):
            shown.append(Attribute(name, json.dumps(value, indent=2, ensure_ascii=False), True))
        elif value is None:
            shown.append(Attribute(name, "—", False))
        elif isinstance(value, bool):
            shown.append(Attribute(name, "yes" if value else "no", False))
        else:
            shown.append(Attribute(name, str(value), False))
    return shown


class ContactPageMixin:
    """Adds the contact page (`<id>/page/`) to the contact admin."""

    def get_urls(self):
        page = path(
            "<path:object_id>/page/",
            self.admin_site.admin_view(self.contact_page_view),
            name="contacts_contact_page",
        )
        return [page, *super().get_urls()]

    @admin.display(description="Contact page")
    def contact_page(self, obj):
        url = reverse("admin:contacts_contact_page", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, "Page")

    def contact_page_view(self, request, object_id):
        """GET only shows: nothing on this page changes anything."""
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD"])
        contact = self.get_object(request, unquote(object_id))
        if contact is None:
            raise Http404("No such contact.")
        if not self.has_view_permission(request, contact):
            raise PermissionDenied
        user = request.user
        memberships = list(
            ListMembership.objects.filter(contact=contact)
            .select_related("contact_list")
            .order_by("contact_list__name")[: LISTS_SHOWN + 1]
        )
        page = timeline.timeline_page(
            contact=contact, user=user, cursor=request.GET.get("before", "")
        )
        panels = [
            {"panel": panel, **panel.context(contact, user)}
            for panel in sorted(_panels.values(), key=lambda panel: (panel.order, panel.name))
            if panel.visible_to(user)
        ]
        return TemplateResponse(
            request,
            "admin/contacts/contact/page.html",
            {
                **self.admin_site.each_context(request),
                "title": str(contact),
                "subtitle": "Contact page",
                "opts": self.model._meta,
                "original": contact,
                "contact": contact,
                "attributes": readable_attributes(contact.attributes),
                "memberships": memberships[:LISTS_SHOWN],
                "more_lists": len(memberships) > LISTS_SHOWN,
                "panels": panels,
                "timeline": page,
                "has_change_permission": self.has_change_permission(request, contact),
            },
        )
