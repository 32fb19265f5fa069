from django.contrib import admin
from django.urls import include, path, re_path

from contacts.api.views import ApiDocsView, ApiSchemaView, NotFoundView

urlpatterns = [
    path("admin/", admin.site.urls),
    # The API's description, and interactive docs: public, like the API's own docs.
    path("api/schema/", ApiSchemaView.as_view(), name="api-schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    # Each app serves its own part of the API (Iterable's paths).
    path("api/", include("contacts.api.urls")),
    path("api/", include("subscriptions.api.urls")),
    path("api/", include("messaging.api.urls")),
    path("api/", include("journeys.api.urls")),
    # Last under /api/: whatever no app serves gets Iterable's JSON 404 (or 401).
    re_path(r"^api/", NotFoundView.as_view()),
    # Delivery and engagement webhooks of email providers, verified by anymail.
    path("webhooks/anymail/", include("anymail.urls")),
    path("", include("messaging.urls")),
    # The subscriber's pages: preference center, unsubscribe, confirmation.
    path("", include("subscriptions.urls")),
]
