from django.urls import path

from contacts.api import views
from contacts.api.views.forget import ForgetUserView

urlpatterns = [
    path("events/track", views.TrackEventView.as_view(), name="api-events-track"),
    path("users/forget", ForgetUserView.as_view(), name="api-users-forget"),
]
