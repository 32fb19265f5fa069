from django.contrib.admin.apps import AdminConfig


class WaymarkAdminConfig(AdminConfig):
    """Django's admin, on Waymark's site (config.admin_site)."""

    default_site = "config.admin_site.WaymarkAdminSite"

    def ready(self):
        super().ready()  # registers every app's admin
        from django.contrib import admin

        from config.queues_admin import queues_admin_register

        queues_admin_register(admin.site)
