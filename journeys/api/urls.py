"""The integrator API paths the journeys app serves, mounted under /api/ by config/urls.py."""

urlpatterns = []
