"""Request and response shapes of /api/users/... (Iterable's names)."""

from rest_framework import serializers

from contacts.api.serializers import IterableRequestSerializer, UserIdentitySerializer


class UserUpdateRequestSerializer(UserIdentitySerializer):
    """Iterable's ApiUserUpdateRequest (and, per user, BulkUpdateUsersRequest's items)."""

    dataFields = serializers.DictField(required=False, default=dict)
    preferUserId = serializers.BooleanField(required=False, default=False)
    mergeNestedObjects = serializers.BooleanField(required=False, default=False)
    # Accepted for Iterable's clients; Waymark keeps every field it is sent.
    createNewFields = serializers.BooleanField(required=False)


class BulkUpdateUsersRequestSerializer(serializers.Serializer):
    """Iterable's BulkUpdateUsersRequest. Each user is validated on its own
    (UserUpdateRequestSerializer) so that one bad user fails alone."""

    users = serializers.ListField(child=UserUpdateRequestSerializer())
    createNewFields = serializers.BooleanField(required=False)


class BulkUpdateUsersEnvelopeSerializer(IterableRequestSerializer):
    """What is checked of the whole body before any user is looked at."""

    users = serializers.ListField(child=serializers.JSONField(), allow_empty=True)
    createNewFields = serializers.BooleanField(required=False)


def _strings():
    return serializers.ListField(child=serializers.CharField())


class FailedUserUpdatesSerializer(serializers.Serializer):
    conflictEmails = _strings()
    conflictUserIds = _strings()
    invalidEmails = _strings()
    invalidUserIds = _strings()
    invalidDataEmails = _strings()
    invalidDataUserIds = _strings()


class FailedUserSerializer(serializers.Serializer):
    """A Waymark addition to Iterable's answer: each user that failed, by its
    position in `users` (from 0), with the reason."""

    index = serializers.IntegerField()
    email = serializers.CharField(allow_null=True)
    userId = serializers.CharField(allow_null=True)
    reason = serializers.ChoiceField(
        choices=["invalidEmail", "invalidUserId", "invalidData", "conflict"]
    )
    msg = serializers.CharField()


class BulkUpdateUsersResponseSerializer(serializers.Serializer):
    """Iterable's UserBulkUpdateListResponse."""

    successCount = serializers.IntegerField()
    failCount = serializers.IntegerField()
    invalidEmails = _strings()
    invalidUserIds = _strings()
    failedUpdates = FailedUserUpdatesSerializer()
    failures = FailedUserSerializer(many=True)


class UpdateEmailRequestSerializer(IterableRequestSerializer):
    """Iterable's UpdateEmailRequest: currentEmail or currentUserId, and newEmail."""

    currentEmail = serializers.EmailField(required=False, max_length=254)
    currentUserId = serializers.CharField(required=False, max_length=255, trim_whitespace=False)
    newEmail = serializers.EmailField(max_length=254)

    def validate(self, attrs):
        if not attrs.get("currentEmail") and not attrs.get("currentUserId"):
            raise serializers.ValidationError("Either currentEmail or currentUserId is required.")
        return attrs


class UserFieldsResponseSerializer(serializers.Serializer):
    """Iterable's GetUserFieldsResponse: field name -> type."""

    fields = serializers.DictField(child=serializers.CharField())


class DeviceSerializer(IterableRequestSerializer):
    """Iterable's Device."""

    token = serializers.CharField(max_length=2048)
    platform = serializers.ChoiceField(choices=["APNS", "APNS_SANDBOX", "GCM"])
    applicationName = serializers.CharField(max_length=255, allow_blank=True)
    # Accepted for Iterable's clients; Waymark keeps no data per device.
    dataFields = serializers.DictField(required=False)


class RegisterDeviceTokenRequestSerializer(UserIdentitySerializer):
    """Iterable's RegisterDeviceTokenRequest."""

    device = DeviceSerializer()
    preferUserId = serializers.BooleanField(required=False, default=False)


class RegisterBrowserTokenRequestSerializer(UserIdentitySerializer):
    """Iterable's RegisterBrowserTokenRequest. Waymark sends web push itself
    (VAPID), so browserToken is the browser's PushSubscription as
    JSON.stringify(subscription) gives it: {"endpoint", "keys": {"p256dh", "auth"}}."""

    browserToken = serializers.CharField(max_length=8192)
