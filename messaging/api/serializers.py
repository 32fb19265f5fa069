"""Requests and answers of the messaging API, in Iterable's field names."""

import re
from datetime import UTC, timedelta

from django.template.defaultfilters import linebreaksbr
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers

from contacts.api.serializers import BIGINT_MAX, IterableRequestSerializer, UserIdentitySerializer

# Iterable schedules a send at most this far ahead.
MAX_SCHEDULE_AHEAD = timedelta(days=365)
# The most messages one read returns (Iterable's limit for sent messages).
MAX_READ = 1000


def parse_iterable_time(value: str):
    """An aware datetime from Iterable's `YYYY-MM-DD HH:MM:SS` (UTC) or `... +00:00`,
    or any ISO 8601 time; None when it is neither.

    A `+` before the offset that form decoding turned into a space (a query
    string sent unencoded) is read as the `+` it was.
    """
    text = value.strip()
    text = re.sub(r"(\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s+(\d{2}:?\d{2})$", r"\1+\2", text)
    try:
        parsed = parse_datetime(text)
        if parsed is None:
            return None
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


class IterableDateTimeField(serializers.DateTimeField):
    """A time in Iterable's format or ISO 8601 (see parse_iterable_time); naive means UTC."""

    def to_internal_value(self, value):
        if not isinstance(value, str) or len(value) > 64:
            self.fail("invalid", format="YYYY-MM-DD HH:MM:SS or ISO 8601")
        parsed = parse_iterable_time(value)
        if parsed is None:
            self.fail("invalid", format="YYYY-MM-DD HH:MM:SS or ISO 8601")
        return parsed


# --- targeted sends ---------------------------------------------------------------------


class TargetSerializer(IterableRequestSerializer):
    """Iterable's Target<Medium>Request: one template (campaignId) to one user."""

    recipientEmail = serializers.EmailField(required=False, allow_blank=False, max_length=254)
    recipientUserId = serializers.CharField(
        required=False, allow_blank=False, max_length=255, trim_whitespace=False
    )
    campaignId = serializers.IntegerField(
        min_value=0, max_value=BIGINT_MAX, help_text="The id of the Waymark template to send."
    )
    dataFields = serializers.DictField(
        required=False,
        default=dict,
        help_text="Merged into the template's data, over the user's own fields.",
    )
    sendAt = serializers.CharField(
        required=False,
        max_length=64,
        help_text="Send later: YYYY-MM-DD HH:MM:SS in UTC (or ISO 8601), at most 365 days "
        "ahead. A time past sends now.",
    )
    allowRepeatMarketingSends = serializers.BooleanField(
        required=False,
        default=True,
        help_text="False: a marketing template already sent to the user is not sent again.",
    )

    def validate_sendAt(self, value):
        send_at = parse_iterable_time(value)
        if send_at is None:
            raise serializers.ValidationError("sendAt must be a time as YYYY-MM-DD HH:MM:SS (UTC).")
        if send_at > timezone.now() + MAX_SCHEDULE_AHEAD:
            raise serializers.ValidationError("sendAt may be at most 365 days ahead.")
        return send_at

    def validate(self, attrs):
        if not attrs.get("recipientEmail") and not attrs.get("recipientUserId"):
            raise serializers.ValidationError(
                "Either recipientEmail or recipientUserId must be provided."
            )
        return attrs


class TargetWithMetadataSerializer(TargetSerializer):
    metadata = serializers.DictField(
        required=False,
        help_text="Kept with the message; not used for rendering.",
    )


class TargetEmailSerializer(TargetWithMetadataSerializer):
    pass


class TargetPushSerializer(TargetWithMetadataSerializer):
    pass


class TargetSMSSerializer(TargetSerializer):
    pass


class TargetWhatsAppSerializer(TargetSerializer):
    pass


class TargetWebPushSerializer(TargetSerializer):
    pass


class TargetInAppSerializer(TargetSerializer):
    pass


class TargetRecipientScheme(OpenApiSerializerExtension):
    """A target names its recipient by recipientEmail or recipientUserId: one is required."""

    target_class = "messaging.api.serializers.TargetSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if direction == "request":
            schema["anyOf"] = [{"required": ["recipientEmail"]}, {"required": ["recipientUserId"]}]
        return schema


class TargetParamsSerializer(serializers.Serializer):
    """`params` of a targeted send's answer: what became of it."""

    messageId = serializers.CharField(help_text="The Waymark message id.")
    status = serializers.ChoiceField(choices=["sent", "skipped", "failed", "queued", "sending"])
    skipReason = serializers.CharField(allow_blank=True)
    detail = serializers.CharField(allow_blank=True)
    sendAt = serializers.DateTimeField(
        allow_null=True, help_text="When a queued message will be tried."
    )
    replayed = serializers.BooleanField(
        help_text="The Idempotency-Key named an earlier send: its outcome, nothing sent again."
    )


class TargetResponseSerializer(serializers.Serializer):
    msg = serializers.CharField()
    code = serializers.CharField()
    params = TargetParamsSerializer()


# --- in-app messages ---------------------------------------------------------------------


class InAppMessagesQuerySerializer(UserIdentitySerializer):
    count = serializers.IntegerField(
        min_value=1, max_value=MAX_READ, help_text="How many messages, newest first."
    )
    platform = serializers.ChoiceField(
        choices=["iOS", "Android", "Web", "OTT"],
        required=False,
        help_text="Waymark's in-app messages are for every app: all are returned.",
    )
    SDKVersion = serializers.CharField(required=False, max_length=64)
    packageName = serializers.CharField(required=False, max_length=255)


class InAppContentSerializer(serializers.Serializer):
    html = serializers.CharField()
    inAppDisplaySettings = serializers.DictField()
    webInAppDisplaySettings = serializers.DictField()


class InboxMetadataSerializer(serializers.Serializer):
    title = serializers.CharField(allow_blank=True)
    subtitle = serializers.CharField(allow_blank=True)


class InAppTriggerSerializer(serializers.Serializer):
    type = serializers.CharField()


class ApiInAppMessageSerializer(serializers.Serializer):
    messageId = serializers.CharField()
    campaignId = serializers.IntegerField()
    createdAt = serializers.DateTimeField()
    expiresAt = serializers.DateTimeField(required=False)
    content = InAppContentSerializer()
    customPayload = serializers.DictField()
    inboxMetadata = InboxMetadataSerializer()
    trigger = InAppTriggerSerializer()
    saveToInbox = serializers.BooleanField()
    read = serializers.BooleanField()
    priorityLevel = serializers.FloatField()
    jsonOnly = serializers.BooleanField()
    messageType = serializers.CharField()
    typeOfContent = serializers.CharField()


class ApiInAppMessagesResponseSerializer(serializers.Serializer):
    inAppMessages = ApiInAppMessageSerializer(many=True)


# --- sent messages -----------------------------------------------------------------------

MESSAGE_MEDIA = {"Email": ["email"], "Push": ["push"], "InApp": ["in_app"], "SMS": ["sms"]}


class SentMessagesQuerySerializer(UserIdentitySerializer):
    limit = serializers.IntegerField(
        required=False, default=10, min_value=1, max_value=MAX_READ, help_text="At most 1000."
    )
    campaignIds = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=BIGINT_MAX),
        required=False,
        max_length=MAX_READ,
        help_text="Only messages of these templates.",
    )
    campaignId = serializers.IntegerField(
        required=False, min_value=0, max_value=BIGINT_MAX, help_text="Only this template."
    )
    startDateTime = IterableDateTimeField(
        required=False, help_text="Sent at or after: yyyy-MM-dd HH:mm:ss ZZ (or ISO 8601)."
    )
    endDateTime = IterableDateTimeField(
        required=False, help_text="Sent at or before: yyyy-MM-dd HH:mm:ss ZZ (or ISO 8601)."
    )
    excludeBlastCampaigns = serializers.BooleanField(
        required=False, default=False, help_text="Waymark has no blast campaigns: no effect."
    )
    messageMedium = serializers.ChoiceField(choices=list(MESSAGE_MEDIA), required=False)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        start, end = attrs.get("startDateTime"), attrs.get("endDateTime")
        if start and end and start > end:
            raise serializers.ValidationError("startDateTime is after endDateTime.")
        return attrs


class SentMessageSerializer(serializers.Serializer):
    messageId = serializers.CharField()
    campaignId = serializers.IntegerField()
    templateId = serializers.IntegerField()
    createdAt = serializers.CharField(help_text="When it was sent: yyyy-MM-dd HH:mm:ss +00:00.")


class GetSentMessagesResponseSerializer(serializers.Serializer):
    messages = SentMessageSerializer(many=True)


# --- answers built from Waymark's rows -------------------------------------------------

# A centred card over the app, as Iterable's SDKs lay out an in-app message.
_DISPLAY_SETTINGS = {
    "top": {"displayOption": "AutoExpand"},
    "bottom": {"displayOption": "AutoExpand"},
    "left": {"percentage": 5},
    "right": {"percentage": 5},
    "bgColor": {"alpha": 0.5, "hex": "#000000"},
    "shouldAnimate": False,
}
# Iterable's "medium" priority, the one its messages get unless set otherwise.
_PRIORITY_MEDIUM = 300.5


def _in_app_html(entry) -> str:
    """The message as a small page the SDK shows; everything in it escaped.
    `iterable://dismiss` is the SDKs' link for closing the message."""
    parts = ['<html><body style="font-family: sans-serif; padding: 16px">']
    if entry.title:
        parts.append(format_html("<h2>{}</h2>", entry.title))
    parts.append(format_html("<p>{}</p>", linebreaksbr(entry.body)))
    if entry.url:
        parts.append(format_html('<p><a href="{}">Open</a></p>', entry.url))
    parts.append('<p><a href="iterable://dismiss">Close</a></p></body></html>')
    return "".join(parts)


def in_app_message_payload(entry, *, platform: str | None = None) -> dict:
    """One of Waymark's in-app messages (InAppMessage, with `template_id`) as
    Iterable's ApiInAppMessage."""
    payload = {
        "messageId": str(entry.message_id),
        "campaignId": entry.template_id,
        "createdAt": entry.created_at,
        "content": {
            "html": _in_app_html(entry),
            "inAppDisplaySettings": _DISPLAY_SETTINGS,
            "webInAppDisplaySettings": {"position": "Center"},
        },
        "customPayload": {"title": entry.title, "body": entry.body, "url": entry.url},
        "inboxMetadata": {"title": entry.title, "subtitle": entry.body[:200]},
        "trigger": {"type": "immediate"},
        "saveToInbox": True,
        "read": entry.read_at is not None,
        "priorityLevel": _PRIORITY_MEDIUM,
        "jsonOnly": False,
        "messageType": "Web" if platform == "Web" else "Mobile",
        "typeOfContent": "Static",
    }
    if entry.expires_at is not None:
        payload["expiresAt"] = entry.expires_at
    return payload


def sent_message_payload(row: dict) -> dict:
    """A row of messaging.selectors.sent_messages as Iterable's SentMessage."""
    return {
        "messageId": str(row["id"]),
        "campaignId": row["template_id"],
        "templateId": row["template_id"],
        "createdAt": row["sent_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +00:00"),
    }
