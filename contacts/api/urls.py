from django.urls import path

from contacts.api import views
from contacts.api.views import events

urlpatterns = [
    path("events/track", views.TrackEventView.as_view(), name="api-events-track"),
    path("events/trackBulk", events.TrackBulkView.as_view(), name="api-events-track-bulk"),
]
