"""The integrator API paths the messaging app serves, mounted under /api/ by config/urls.py."""

urlpatterns = []
