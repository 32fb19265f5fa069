"""rq's queues, jobs and workers in the admin (django-rq's pages), behind a permission."""

from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django_rq.admin import QueueAdmin
from django_rq.models import Dashboard

# Superusers have it; give it to the staff who may look after rq's queues
# (requeue, delete and empty them): "Django-RQ | Access admin page".
QUEUES_PERMISSION = "django_rq.admin"


def may_manage_queues(request) -> bool:
    return (
        request.user.is_active
        and request.user.is_staff
        and (request.user.has_perm(QUEUES_PERMISSION))
    )


def _needs_queues_permission(view):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        # Visitors not signed in as staff are left to the view (the admin's
        # login page, or django-rq's token check); staff need the permission.
        user = request.user
        if user.is_active and user.is_staff and not user.has_perm(QUEUES_PERMISSION):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return guarded


class QueuesAdmin(QueueAdmin):
    """django-rq's pages (queues, jobs, failed jobs, workers) in the admin.

    django-rq lets any staff member in, and its pages requeue, delete and
    empty: here each one needs QUEUES_PERMISSION, checked on the server
    for every URL, whatever links are shown.
    """

    def has_module_permission(self, request):
        return may_manage_queues(request)

    def has_view_permission(self, request, obj=None):
        return may_manage_queues(request)

    def has_change_permission(self, request, obj=None):
        return may_manage_queues(request)

    def get_urls(self):
        urls = super().get_urls()
        for pattern in urls:
            pattern.callback = _needs_queues_permission(pattern.callback)
        return urls


def queues_admin_register(site: admin.AdminSite) -> None:
    """Put QueuesAdmin in place of the admin django-rq registers for itself."""
    if site.is_registered(Dashboard):
        site.unregister(Dashboard)
    site.register(Dashboard, QueuesAdmin)
