"""The integrator API paths the journeys app serves, mounted under /api/ by config/urls.py."""

from django.urls import path

from journeys.api import views

urlpatterns = [
    path("journeys", views.JourneyListView.as_view(), name="api-journeys"),
    path(
        "workflows/triggerWorkflow",
        views.TriggerWorkflowView.as_view(),
        name="api-workflows-trigger",
    ),
]
