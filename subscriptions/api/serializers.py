"""Request and response shapes of the subscriptions app's API (Iterable's names)."""

from datetime import UTC

from rest_framework import serializers

from contacts.api.serializers import BIGINT_MAX, IterableRequestSerializer, UserIdentitySerializer
from contacts.phones import InvalidPhoneNumber, normalise_phone
from subscriptions.models import Channel, MessageType

MESSAGE_MEDIUM = {
    Channel.Medium.EMAIL: "Email",
    Channel.Medium.SMS: "SMS",
    Channel.Medium.PUSH: "Push",
    Channel.Medium.WEB_PUSH: "WebPush",
    Channel.Medium.WHATSAPP: "WhatsApp",
    Channel.Medium.IN_APP: "InApp",
    Channel.Medium.WEBHOOK: "Webhook",
}
CHANNEL_TYPE = {Channel.Kind.MARKETING: "Marketing", Channel.Kind.TRANSACTIONAL: "Transactional"}
# Iterable knows two policies; a double-opt-in type also needs a subscription
# (a confirmed one), so it is "OptIn", and `doubleOptIn` tells the two apart.
SUBSCRIPTION_POLICY = {
    MessageType.Policy.OPT_OUT: "OptOut",
    MessageType.Policy.OPT_IN: "OptIn",
    MessageType.Policy.DOUBLE_OPT_IN: "OptIn",
}
FREQUENCY_DAYS = {MessageType.Period.DAY: 1, MessageType.Period.WEEK: 7}


def epoch_ms(moment):
    return int(moment.timestamp() * 1000)


class ChannelSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    channelType = serializers.ChoiceField(choices=sorted(CHANNEL_TYPE.values()))
    messageMedium = serializers.ChoiceField(choices=sorted(MESSAGE_MEDIUM.values()))

    def to_representation(self, channel):
        return {
            "id": channel.pk,
            "name": channel.name,
            "channelType": CHANNEL_TYPE[channel.kind],
            "messageMedium": MESSAGE_MEDIUM[channel.medium],
        }


class ChannelsResponseSerializer(serializers.Serializer):
    channels = ChannelSerializer(many=True)


class FrequencyCapSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    messages = serializers.IntegerField()


class MessageTypeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    channelId = serializers.IntegerField()
    createdAt = serializers.IntegerField(help_text="Epoch milliseconds")
    updatedAt = serializers.IntegerField(
        help_text="Epoch milliseconds (Waymark keeps no edit time: the creation time)"
    )
    subscriptionPolicy = serializers.ChoiceField(choices=["OptIn", "OptOut"])
    doubleOptIn = serializers.BooleanField(
        help_text="True for an OptIn type whose subscriptions count once confirmed by link"
    )
    frequencyCap = FrequencyCapSerializer(required=False)

    def to_representation(self, message_type):
        created = epoch_ms(message_type.created_at)
        shape = {
            "id": message_type.pk,
            "name": message_type.name,
            "channelId": message_type.channel_id,
            "createdAt": created,
            "updatedAt": created,
            "subscriptionPolicy": SUBSCRIPTION_POLICY[message_type.policy],
            "doubleOptIn": message_type.policy == MessageType.Policy.DOUBLE_OPT_IN,
        }
        if message_type.frequency_limit:
            shape["frequencyCap"] = {
                "days": FREQUENCY_DAYS[message_type.frequency_period],
                "messages": message_type.frequency_limit,
            }
        return shape


class MessageTypesResponseSerializer(serializers.Serializer):
    messageTypes = MessageTypeSerializer(many=True)


def iterable_date(moment):
    """Iterable's date format in user profiles: "2024-05-01 09:30:00 +00:00"."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +00:00")


def user_profile(contact, ids) -> dict:
    """Iterable's user object: email and userId, and in dataFields the
    contact's attributes with the profile's own fields (which win over an
    attribute of the same name)."""
    data_fields = {
        **contact.attributes,
        "email": contact.email,
        "userId": contact.user_id,
        "signupDate": iterable_date(contact.created_at),
        "profileUpdatedAt": iterable_date(contact.updated_at),
        "emailListIds": ids.email_list_ids,
        "unsubscribedChannelIds": ids.unsubscribed_channel_ids,
        "unsubscribedMessageTypeIds": ids.unsubscribed_message_type_ids,
        "subscribedMessageTypeIds": ids.subscribed_message_type_ids,
    }
    if contact.phone:
        data_fields["phoneNumber"] = contact.phone
    return {"email": contact.email, "userId": contact.user_id, "dataFields": data_fields}


class UserSerializer(serializers.Serializer):
    email = serializers.CharField(allow_null=True, help_text="Null for a user known by userId only")
    userId = serializers.CharField(allow_null=True)
    dataFields = serializers.DictField(
        help_text="The user's fields, with signupDate, profileUpdatedAt, emailListIds, "
        "unsubscribedChannelIds, unsubscribedMessageTypeIds and subscribedMessageTypeIds"
    )


class UserResponseSerializer(serializers.Serializer):
    user = UserSerializer(required=False, help_text="Absent ({}) when no such user exists")


class GetByEmailQuerySerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)


def id_list(help_text):
    return serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=BIGINT_MAX),
        required=False,
        allow_null=True,
        max_length=10_000,
        help_text=help_text + " Replaces what is stored; absent or null: left as it is.",
    )


class UpdateSubscriptionsSerializer(UserIdentitySerializer):
    emailListIds = id_list("Lists the user is a member of.")
    unsubscribedChannelIds = id_list("Channels the user is unsubscribed from.")
    unsubscribedMessageTypeIds = id_list("Message types the user is unsubscribed from.")
    subscribedMessageTypeIds = id_list(
        "Opt-in message types the user is subscribed to (a double-opt-in one awaits "
        "confirmation by email)."
    )
    campaignId = serializers.IntegerField(required=False, min_value=0, max_value=BIGINT_MAX)
    templateId = serializers.IntegerField(required=False, min_value=0, max_value=BIGINT_MAX)
    validateChannelAlignment = serializers.BooleanField(
        required=False,
        default=True,
        help_text="When true (the default), subscribing to a message type of a channel the "
        "user is unsubscribed from is refused.",
    )
    validateIds = serializers.BooleanField(
        required=False,
        default=False,
        help_text="When true, an unknown list, channel or message type id is refused "
        "(BadParams); when false (the default), it is ignored.",
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        both = set(attrs.get("unsubscribedMessageTypeIds") or ()) & set(
            attrs.get("subscribedMessageTypeIds") or ()
        )
        if both:
            raise serializers.ValidationError(
                "Message types both subscribed and unsubscribed: "
                + ", ".join(str(pk) for pk in sorted(both))
            )
        return attrs


class BulkUpdateSubscriptionsSerializer(IterableRequestSerializer):
    """The body's shape; each request in it is checked on its own, so one bad
    request fails alone (see BulkUpdateSubscriptionsView)."""

    updateSubscriptionsRequests = serializers.ListField(
        child=serializers.JSONField(allow_null=True)
    )


class BulkUpdateSubscriptionsSchema(serializers.Serializer):
    updateSubscriptionsRequests = UpdateSubscriptionsSerializer(many=True)


class UpdateFailureSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the request in the body, from 0")
    email = serializers.CharField(required=False, allow_null=True)
    userId = serializers.CharField(required=False, allow_null=True)
    reason = serializers.CharField()


class BulkUpdateSubscriptionsResponseSerializer(serializers.Serializer):
    successCount = serializers.IntegerField()
    failCount = serializers.IntegerField()
    invalidEmails = serializers.ListField(child=serializers.CharField())
    invalidUserIds = serializers.ListField(child=serializers.CharField())
    validEmailFailures = serializers.ListField(child=serializers.CharField())
    validUserIdFailures = serializers.ListField(child=serializers.CharField())
    failures = UpdateFailureSerializer(
        many=True, help_text="Every request not applied, by position, with the reason"
    )


class SubscriptionGroupPathSerializer(serializers.Serializer):
    subscriptionGroup = serializers.CharField()
    subscriptionGroupId = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)


class UserEmailPathSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class UserIdPathSerializer(serializers.Serializer):
    userId = serializers.CharField(max_length=255, trim_whitespace=False)


class BulkSubscriptionActionQuerySerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["subscribe", "unsubscribe"])


class BulkSubscriptionActionSerializer(IterableRequestSerializer):
    users = serializers.ListField(
        child=serializers.CharField(max_length=254),
        required=False,
        default=list,
        help_text="Users named by email",
    )
    usersByUserId = serializers.ListField(
        child=serializers.CharField(max_length=255, trim_whitespace=False),
        required=False,
        default=list,
        help_text="Users named by userId",
    )


class GroupFailureSerializer(serializers.Serializer):
    email = serializers.CharField(required=False)
    userId = serializers.CharField(required=False)
    reason = serializers.CharField()


class BulkSubscriptionActionResultSerializer(serializers.Serializer):
    successCount = serializers.IntegerField()
    failCount = serializers.IntegerField()
    invalidEmails = serializers.ListField(child=serializers.CharField())
    invalidUserIds = serializers.ListField(child=serializers.CharField())
    failures = GroupFailureSerializer(many=True, help_text="Users not changed, with the reason")


class DoubleOptInSubscriptionsSerializer(UserIdentitySerializer):
    messageTypeIds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=BIGINT_MAX),
        min_length=1,
        max_length=1000,
        help_text="Double-opt-in message types to subscribe the user to, once confirmed",
    )
    phoneNumber = serializers.CharField(
        required=False, max_length=32, help_text="Set on the user's profile (E.164)"
    )
    brandName = serializers.CharField(
        required=False,
        max_length=255,
        help_text="Accepted for Iterable's clients; Waymark's confirmation email comes from "
        "its confirmation template (WAYMARK_CONFIRMATION_TEMPLATE)",
    )

    def validate_phoneNumber(self, value):
        try:
            return normalise_phone(value)
        except InvalidPhoneNumber as exc:
            raise serializers.ValidationError(str(exc)) from exc
