"""The integrator API paths the messaging app serves, mounted under /api/ by config/urls.py."""

from django.urls import path

from messaging.api import views

urlpatterns = [
    path("email/target", views.TargetEmailView.as_view(), name="api-email-target"),
    path("sms/target", views.TargetSmsView.as_view(), name="api-sms-target"),
    path("push/target", views.TargetPushView.as_view(), name="api-push-target"),
    path("whatsApp/target", views.TargetWhatsAppView.as_view(), name="api-whatsapp-target"),
    path("webPush/target", views.TargetWebPushView.as_view(), name="api-webpush-target"),
    path("inApp/target", views.TargetInAppView.as_view(), name="api-inapp-target"),
    path("inApp/getMessages", views.InAppMessagesView.as_view(), name="api-inapp-messages"),
    # users/<email> (the users endpoints) matches only paths with an "@": no clash.
    path("users/getSentMessages", views.SentMessagesView.as_view(), name="api-sent-messages"),
]
