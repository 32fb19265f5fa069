from django.urls import path

from contacts.api import views
from contacts.api.views import users as user_views
from contacts.api.views.forget import ForgetUserView

urlpatterns = [
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
