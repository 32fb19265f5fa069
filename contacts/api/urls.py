from django.urls import path

from contacts.api import views

urlpatterns = [
    path("events/track", views.TrackEventView.as_view(), name="api-events-track"),
]
