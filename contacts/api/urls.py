from django.urls import path, re_path

import contacts.api.views.events as event_views
import contacts.api.views.lists as list_views
from contacts.api import views
from contacts.api.views import users as user_views
from contacts.api.views.forget import ForgetUserView

urlpatterns = [
    path("events/trackBulk", event_views.TrackBulkView.as_view(), name="api-events-track-bulk"),
    re_path(
        r"^events/byUserId/(?P<userId>.+)$",
        event_views.UserEventsByUserIdView.as_view(),
        name="api-events-by-user-id",
    ),
    # Only an email (it holds an "@"): events/track and the like are not shadowed.
    re_path(
        r"^events/(?P<email>[^@]+@.+)$",
        event_views.UserEventsByEmailView.as_view(),
        name="api-events-by-email",
    ),
    path("lists", list_views.ListsView.as_view(), name="api-lists"),
    path("lists/getUsers", list_views.ListUsersView.as_view(), name="api-lists-get-users"),
    path(
        "lists/previewUsers",
        list_views.ListPreviewUsersView.as_view(),
        name="api-lists-preview-users",
    ),
    path("lists/subscribe", list_views.ListSubscribeView.as_view(), name="api-lists-subscribe"),
    # Any id reaches the view, which answers one that is not a list's with
    # BadParams; lists/unsubscribe is the subscriptions app's, mounted after this.
    re_path(
        r"^lists/(?P<listId>(?!unsubscribe$)[^/]+)$", list_views.ListView.as_view(), name="api-list"
    ),
    re_path(
        r"^lists/(?P<listId>[^/]+)/size$", list_views.ListSizeView.as_view(), name="api-list-size"
    ),
    path("events/track", views.TrackEventView.as_view(), name="api-events-track"),
    # Before any users/<email> pattern: these names are not email addresses.
    path("users/update", user_views.UserUpdateView.as_view(), name="api-users-update"),
    path(
        "users/bulkUpdate", user_views.UsersBulkUpdateView.as_view(), name="api-users-bulk-update"
    ),
    path(
        "users/updateEmail",
        user_views.UserUpdateEmailView.as_view(),
        name="api-users-update-email",
    ),
    path("users/getFields", user_views.UserFieldsView.as_view(), name="api-users-get-fields"),
    path(
        "users/registerDeviceToken",
        user_views.RegisterDeviceTokenView.as_view(),
        name="api-users-register-device-token",
    ),
    path(
        "users/registerBrowserToken",
        user_views.RegisterBrowserTokenView.as_view(),
        name="api-users-register-browser-token",
    ),
    path("users/forget", ForgetUserView.as_view(), name="api-users-forget"),
]
