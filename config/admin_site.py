"""Waymark's admin site: Django's, with the operations dashboard on its index page."""

from django.contrib import admin


class WaymarkAdminSite(admin.AdminSite):
    site_header = "Waymark"
    site_title = "Waymark"
    index_title = "Journeys, contacts and messages"
    # Waymark has no public site for the admin's "View site" link to open (its
    # public pages each need a signed link): no link, rather than one to a 404.
    site_url = None

    def index(self, request, extra_context=None):
        from config.dashboard import dashboard

        extra_context = {"dashboard": dashboard(user=request.user), **(extra_context or {})}
        return super().index(request, extra_context)
