"""Request and response shapes of /api/events/... (Iterable's names)."""

from rest_framework import serializers

from contacts.api.serializers import IterableRequestSerializer, TrackRequestSerializer


class BulkTrackEventSerializer(TrackRequestSerializer):
    """One event of BulkTrackRequest: TrackRequest's rules, except that a
    malformed email fails that event alone (Iterable's invalidEmails), so
    here it is any string and the view checks it."""

    email = serializers.CharField(required=False, allow_blank=False, trim_whitespace=False)


class BulkTrackRequestSerializer(IterableRequestSerializer):
    """Iterable's BulkTrackRequest. A body whose shape is wrong (an event
    without eventName, a number where a string belongs) is refused whole."""

    events = BulkTrackEventSerializer(many=True)


def _strings():
    return serializers.ListField(child=serializers.CharField())


class FailedEventUpdatesSerializer(serializers.Serializer):
    """Iterable's FailedEventUpdates."""

    invalidEmails = _strings()
    invalidUserIds = _strings()
    notFoundEmails = _strings()
    notFoundUserIds = _strings()
    forgottenEmails = _strings()
    forgottenUserIds = _strings()


class FailedEventSerializer(serializers.Serializer):
    """A Waymark addition to Iterable's answer: each event that was not
    stored, by its position in `events` (from 0), with the reason."""

    index = serializers.IntegerField()
    email = serializers.CharField(allow_null=True)
    userId = serializers.CharField(allow_null=True)
    reason = serializers.ChoiceField(choices=["invalidEmail", "invalidUserId", "conflict"])
    msg = serializers.CharField()


class BulkTrackResponseSerializer(serializers.Serializer):
    """Iterable's BulkTrackResponse."""

    successCount = serializers.IntegerField()
    failCount = serializers.IntegerField()
    invalidEmails = _strings()
    invalidUserIds = _strings()
    disallowedEventNames = _strings()
    failedUpdates = FailedEventUpdatesSerializer()
    failures = FailedEventSerializer(many=True)


class UserEventsQuerySerializer(IterableRequestSerializer):
    # Iterable's default and maximum.
    limit = serializers.IntegerField(required=False, default=30, min_value=1, max_value=200)


class UserEventSerializer(serializers.Serializer):
    """One event as Iterable's GetEventsResponse lists it (_id: the event's id,
    as given to events/track or made there)."""

    _id = serializers.CharField()
    eventName = serializers.CharField()
    eventType = serializers.CharField()
    createdAt = serializers.CharField(help_text="When it happened: yyyy-MM-dd HH:mm:ss +00:00")
    email = serializers.CharField(required=False)
    userId = serializers.CharField(required=False)
    dataFields = serializers.DictField()
    campaignId = serializers.IntegerField(required=False)
    templateId = serializers.IntegerField(required=False)


class UserEventsResponseSerializer(serializers.Serializer):
    events = UserEventSerializer(many=True)
