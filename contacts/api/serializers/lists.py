"""Request and response shapes of /api/lists/... (Iterable's names)."""

from rest_framework import serializers

from contacts.api.serializers import BIGINT_MAX, IterableRequestSerializer, UserIdentitySerializer


def _list_id(**kwargs):
    return serializers.IntegerField(min_value=0, max_value=BIGINT_MAX, **kwargs)


def _strings():
    return serializers.ListField(child=serializers.CharField())


class ListDetailsSerializer(serializers.Serializer):
    """Iterable's ListDetails."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    createdAt = serializers.IntegerField(help_text="Epoch time in milliseconds")
    listType = serializers.ChoiceField(choices=["Standard", "Dynamic", "Suppression", "Internal"])
    description = serializers.CharField(required=False)


class GetListsResponseSerializer(serializers.Serializer):
    lists = ListDetailsSerializer(many=True)


class CreateListRequestSerializer(IterableRequestSerializer):
    """Iterable's CreateListRequest."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")


class CreateListResponseSerializer(serializers.Serializer):
    listId = serializers.IntegerField()


class ListUsersQuerySerializer(IterableRequestSerializer):
    listId = _list_id()
    preferUserId = serializers.BooleanField(required=False, default=False)


class ListPreviewQuerySerializer(ListUsersQuerySerializer):
    # Iterable's default and maximum.
    size = serializers.IntegerField(required=False, default=1000, min_value=1, max_value=5000)


class ListSubscriberSerializer(UserIdentitySerializer):
    """Iterable's OptionalApiUser. A malformed email fails that subscriber
    alone (invalidEmails), so here it is any string and the view checks it."""

    email = serializers.CharField(required=False, allow_blank=False, trim_whitespace=False)
    dataFields = serializers.DictField(required=False, default=dict)
    preferUserId = serializers.BooleanField(required=False, default=False)
    mergeNestedObjects = serializers.BooleanField(required=False, default=False)


class SubscribeRequestSerializer(IterableRequestSerializer):
    """Iterable's SubscribeRequest."""

    listId = _list_id()
    subscribers = ListSubscriberSerializer(many=True)
    updateExistingUsersOnly = serializers.BooleanField(required=False, default=False)


class ListUnsubscriberSerializer(UserIdentitySerializer):
    """Iterable's Unsubscriber."""

    email = serializers.CharField(required=False, allow_blank=False, trim_whitespace=False)


class UnsubscribeRequestSerializer(IterableRequestSerializer):
    """Iterable's UnsubscribeRequest."""

    listId = _list_id()
    subscribers = ListUnsubscriberSerializer(many=True)
    campaignId = serializers.IntegerField(required=False, min_value=0, max_value=BIGINT_MAX)
    channelUnsubscribe = serializers.BooleanField(required=False, default=False)


class ListFailedUserUpdatesSerializer(serializers.Serializer):
    """Iterable's FailedUserUpdates, as lists/subscribe and unsubscribe fill it."""

    conflictEmails = _strings()
    conflictUserIds = _strings()
    forgottenEmails = _strings()
    forgottenUserIds = _strings()
    invalidDataEmails = _strings()
    invalidDataUserIds = _strings()
    invalidEmails = _strings()
    invalidUserIds = _strings()
    notFoundEmails = _strings()
    notFoundUserIds = _strings()


class FailedSubscriberSerializer(serializers.Serializer):
    """A Waymark addition to Iterable's answer: each subscriber that failed,
    by its position in `subscribers` (from 0), with the reason."""

    index = serializers.IntegerField()
    email = serializers.CharField(allow_null=True)
    userId = serializers.CharField(allow_null=True)
    reason = serializers.ChoiceField(
        choices=["invalidEmail", "invalidUserId", "notFound", "conflict"]
    )
    msg = serializers.CharField()


class ListBulkResponseSerializer(serializers.Serializer):
    """Iterable's UserBulkUpdateListResponse."""

    successCount = serializers.IntegerField()
    failCount = serializers.IntegerField()
    invalidEmails = _strings()
    invalidUserIds = _strings()
    failedUpdates = ListFailedUserUpdatesSerializer()
    failures = FailedSubscriberSerializer(many=True)
