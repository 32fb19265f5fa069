"""The integrator API paths the subscriptions app serves, mounted under /api/ by config/urls.py."""

from django.urls import path, re_path

from subscriptions.api import channels, lists, subscriptions, users

urlpatterns = [
    path("channels", channels.ChannelsView.as_view(), name="api-channels"),
    path("messageTypes", channels.MessageTypesView.as_view(), name="api-message-types"),
    path(
        "users/updateSubscriptions",
        users.UpdateSubscriptionsView.as_view(),
        name="api-users-update-subscriptions",
    ),
    path(
        "users/bulkUpdateSubscriptions",
        users.BulkUpdateSubscriptionsView.as_view(),
        name="api-users-bulk-update-subscriptions",
    ),
    path("users/getByEmail", users.UserGetByEmailView.as_view(), name="api-users-get-by-email"),
    path(
        "users/byUserId/<str:userId>", users.UserByUserIdView.as_view(), name="api-users-by-user-id"
    ),
    # Only a path holding an "@" is an email: users/update and its siblings stay theirs.
    re_path(
        r"^users/(?P<email>[^/]*@[^/]*)$",
        users.UserByEmailView.as_view(),
        name="api-users-by-email",
    ),
    path(
        "subscriptions/subscribeToDoubleOptIn",
        subscriptions.SubscribeToDoubleOptInView.as_view(),
        name="api-subscriptions-double-opt-in",
    ),
    path(
        "subscriptions/<str:subscriptionGroup>/<str:subscriptionGroupId>",
        subscriptions.SubscriptionGroupBulkView.as_view(),
        name="api-subscriptions-bulk",
    ),
    path(
        "subscriptions/<str:subscriptionGroup>/<str:subscriptionGroupId>/user/<str:userEmail>",
        subscriptions.SubscriptionUserView.as_view(),
        name="api-subscriptions-user",
    ),
    path(
        "subscriptions/<str:subscriptionGroup>/<str:subscriptionGroupId>/byUserId/<str:userId>",
        subscriptions.SubscriptionUserByUserIdView.as_view(),
        name="api-subscriptions-user-id",
    ),
    path("lists/unsubscribe", lists.ListUnsubscribeView.as_view(), name="api-lists-unsubscribe"),
]
