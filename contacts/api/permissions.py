from rest_framework import permissions

from contacts.models import ApiKey


class ApiKeyScope(permissions.BasePermission):
    """An authenticated key, whose scope allows the view.

    Server-side keys may call everything. Client-side keys ship inside apps
    and web pages where anyone can read them, so they may only call views that
    set `client_key_allowed = True` (tracking events, updating a user,
    registering a device).
    """

    message = "This client-side API key may not call this endpoint; use a server-side key."

    def has_permission(self, request, view):
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False
        return api_key.scope == ApiKey.Scope.SERVER or getattr(view, "client_key_allowed", False)
