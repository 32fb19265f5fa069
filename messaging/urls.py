from django.urls import path

from messaging import views

app_name = "messaging"

# Mounted at the site root: these paths go out in messages and must never change.
urlpatterns = [
    path("t/o/<str:token>.gif", views.open_pixel, name="open"),
    path("t/c/<str:token>/", views.click, name="click"),
    path("m/<str:token>/", views.view_in_browser, name="view"),
]
