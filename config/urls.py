from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Waymark"
admin.site.site_title = "Waymark"
admin.site.index_title = "Journeys, contacts and messages"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("contacts.api.urls")),
    # Delivery and engagement webhooks of email providers, verified by anymail.
    path("webhooks/anymail/", include("anymail.urls")),
    path("", include("messaging.urls")),
]
