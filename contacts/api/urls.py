from django.urls import path, re_path

from contacts.api import views
from contacts.api.views import events, lists

urlpatterns = [
    path("events/track", views.TrackEventView.as_view(), name="api-events-track"),
    path("events/trackBulk", events.TrackBulkView.as_view(), name="api-events-track-bulk"),
    re_path(
        r"^events/byUserId/(?P<userId>.+)$",
        events.UserEventsByUserIdView.as_view(),
        name="api-events-by-user-id",
    ),
    # Only an email (it holds an "@"): events/track and the like are not shadowed.
    re_path(
        r"^events/(?P<email>[^@]+@.+)$",
        events.UserEventsByEmailView.as_view(),
        name="api-events-by-email",
    ),
    path("lists", lists.ListsView.as_view(), name="api-lists"),
    path("lists/getUsers", lists.ListUsersView.as_view(), name="api-lists-get-users"),
    path(
        "lists/previewUsers", lists.ListPreviewUsersView.as_view(), name="api-lists-preview-users"
    ),
    path("lists/subscribe", lists.ListSubscribeView.as_view(), name="api-lists-subscribe"),
    # Any id reaches the view, which answers one that is not a list's with
    # BadParams; lists/unsubscribe is the subscriptions app's, mounted after this.
    re_path(
        r"^lists/(?P<listId>(?!unsubscribe$)[^/]+)$", lists.ListView.as_view(), name="api-list"
    ),
    re_path(r"^lists/(?P<listId>[^/]+)/size$", lists.ListSizeView.as_view(), name="api-list-size"),
]
