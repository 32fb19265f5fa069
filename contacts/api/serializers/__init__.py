from collections.abc import Mapping
from datetime import UTC, datetime

from rest_framework import serializers

# Ids are stored in PostgreSQL bigint columns.
BIGINT_MAX = 2**63 - 1


class IterableRequestSerializer(serializers.Serializer):
    """A request body as Iterable's clients send it: they send `null` for an
    optional field they leave out (`"listId": null`), which Iterable reads
    as absent. So does Waymark, except for fields that take null."""

    def to_internal_value(self, data):
        # A query string (a QueryDict, which can repeat a key) holds no nulls.
        if isinstance(data, Mapping) and not hasattr(data, "getlist"):
            fields = self.fields
            data = {
                name: value
                for name, value in data.items()
                if value is not None or (name in fields and fields[name].allow_null)
            }
        return super().to_internal_value(data)


class UserIdentitySerializer(IterableRequestSerializer):
    """Iterable names a user by `email` or `userId`."""

    email = serializers.EmailField(required=False, allow_blank=False, max_length=254)
    userId = serializers.CharField(
        required=False, allow_blank=False, max_length=255, trim_whitespace=False
    )

    def validate(self, attrs):
        if not attrs.get("email") and not attrs.get("userId"):
            raise serializers.ValidationError("Either email or userId must be provided.")
        return attrs


class TrackRequestSerializer(UserIdentitySerializer):
    # As sent: an event's name is the integrator's, spaces and all.
    eventName = serializers.CharField(max_length=255, trim_whitespace=False)
    id = serializers.CharField(required=False, max_length=512)
    # Up to the end of year 9999, the last second Python's datetime can hold.
    createdAt = serializers.IntegerField(required=False, min_value=0, max_value=253402300799)
    dataFields = serializers.DictField(required=False, default=dict)
    campaignId = serializers.IntegerField(required=False, min_value=0, max_value=BIGINT_MAX)
    templateId = serializers.IntegerField(required=False, min_value=0, max_value=BIGINT_MAX)
    createNewFields = serializers.BooleanField(required=False)

    def validate_createdAt(self, value):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise serializers.ValidationError(
                "createdAt must be a unix timestamp in seconds."
            ) from exc
