from django.urls import path, re_path

from contacts.api import views
from contacts.api.views import events

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
]
