from datetime import UTC, datetime

from rest_framework import serializers

# Ids are stored in PostgreSQL bigint columns.
BIGINT_MAX = 2**63 - 1


class UserIdentitySerializer(serializers.Serializer):
    """Iterable names a user by `email` or `userId`."""

    email = serializers.EmailField(required=False, allow_blank=False, max_length=254)
    userId = serializers.CharField(required=False, allow_blank=False, max_length=255)

    def validate(self, attrs):
        if not attrs.get("email") and not attrs.get("userId"):
            raise serializers.ValidationError("Either email or userId must be provided.")
        return attrs


class TrackRequestSerializer(UserIdentitySerializer):
    eventName = serializers.CharField(max_length=255)
    id = serializers.CharField(required=False, max_length=512)
    createdAt = serializers.IntegerField(required=False, min_value=0)
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
