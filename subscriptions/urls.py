from django.urls import path

from subscriptions import views

app_name = "subscriptions"

# Mounted at the site root. These paths go out in messages (subscriptions.tokens
# builds them) and must never change.
urlpatterns = [
    path("preferences/<str:token>/", views.preferences, name="preferences"),
    path("preferences/<str:token>/unsubscribe-all/", views.unsubscribe_all, name="unsubscribe_all"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
]
