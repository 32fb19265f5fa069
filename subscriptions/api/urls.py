"""The integrator API paths the subscriptions app serves, mounted under /api/ by config/urls.py."""

urlpatterns = []
