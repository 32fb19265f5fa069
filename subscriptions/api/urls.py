"""The integrator API paths the subscriptions app serves, mounted under /api/ by config/urls.py."""

from django.urls import path

from subscriptions.api import lists

urlpatterns = [
    path("lists/unsubscribe", lists.ListUnsubscribeView.as_view(), name="api-lists-unsubscribe"),
]
