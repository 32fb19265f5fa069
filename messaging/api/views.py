"""The messaging app's API views: targeted sends and what a user was sent."""

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.api.errors import IterableError, iterable_response
from contacts.api.schema import ERRORS, envelope_responses
from contacts.services import contact_find
from messaging.api import serializers as s
from messaging.models import Message
from messaging.selectors import in_app_inbox, sent_messages
from messaging.services.targeted import (
    IdempotencyKeyReused,
    TargetedSend,
    TemplateNotFound,
    UnknownRecipient,
    WrongMedium,
    message_target,
    target_idempotency_key,
)
from subscriptions.models import Channel

MAX_IDEMPOTENCY_KEY = 255

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Your id for this send. A request repeated with the same key (and the same API key) "
        "sends nothing again and answers what became of the first one."
    ),
)


def _target_schema(operation_id, summary, serializer, tag):
    operation = extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=(
            "Sends the template `campaignId` (a Waymark template of this channel) to one user, "
            "through the same checks as a journey's messages: consent, suppression, caps, "
            "quiet hours. `params` says what became of it: `sent`, `skipped` (with "
            "`skipReason`), `failed`, or `queued` (scheduled by `sendAt`, or to be retried "
            "at `params.sendAt`). An unknown `recipientEmail` is created for email and "
            "in-app sends, as Iterable does; other unknown users are a 400."
        ),
        request=serializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            **envelope_responses(),
            200: OpenApiResponse(s.TargetResponseSerializer, description="What became of it"),
        },
        tags=[tag],
    )
    return extend_schema_view(post=operation)


def _message_for(sent: TargetedSend) -> str:
    if sent.status == Message.Status.SENT:
        return "Message sent."
    if sent.status == Message.Status.SKIPPED:
        if sent.skip_reason in Message.SkipReason.values:
            return f"Message not sent: {Message.SkipReason(sent.skip_reason).label}."
        return f"Message not sent: {sent.detail}."
    if sent.status == Message.Status.FAILED:
        return f"Message could not be sent: {sent.detail}."
    if sent.status == Message.Status.QUEUED and sent.send_at:
        if not sent.message.attempts:
            return f"Message scheduled for {sent.send_at.isoformat()}."
        return f"Delivery failed for now; it will be tried again at {sent.send_at.isoformat()}."
    return f"Message is {sent.status}."


class TargetView(APIView):
    """POST /api/<medium>/target — one template to one user, now or at sendAt."""

    medium = ""
    serializer_class = s.TargetSerializer

    def post(self, request):
        serializer = self.serializer_class(data=request.data)
        if not serializer.is_valid() and "recipientEmail" in serializer.errors:
            raise IterableError(
                f"recipientEmail: {serializer.errors['recipientEmail'][0]}",
                "InvalidEmailAddressError",
                {"errors": serializer.errors},
            )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            sent = message_target(
                medium=self.medium,
                template_id=data["campaignId"],
                email=data.get("recipientEmail"),
                user_id=data.get("recipientUserId"),
                data=data.get("dataFields"),
                metadata=data.get("metadata"),
                send_at=data.get("sendAt"),
                allow_repeat=data["allowRepeatMarketingSends"],
                idempotency_key=self._idempotency_key(request),
                api_key_id=request.auth.pk,
            )
        except (TemplateNotFound, WrongMedium, IdempotencyKeyReused) as exc:
            raise IterableError(str(exc), "BadParams") from exc
        except UnknownRecipient as exc:
            code = "UnknownUserIdError" if exc.by_user_id else "UnknownEmailError"
            raise IterableError(str(exc), code) from exc
        return iterable_response(
            _message_for(sent),
            params={
                "messageId": str(sent.message.pk),
                "status": sent.status,
                "skipReason": sent.skip_reason,
                "detail": sent.detail,
                "sendAt": sent.send_at.isoformat() if sent.send_at else None,
                "replayed": sent.replayed,
            },
        )

    @staticmethod
    def _idempotency_key(request):
        client_key = request.headers.get("Idempotency-Key", "").strip()
        if not client_key:
            return None
        if len(client_key) > MAX_IDEMPOTENCY_KEY:
            raise IterableError(
                f"Idempotency-Key may be at most {MAX_IDEMPOTENCY_KEY} characters long.",
                "BadParams",
            )
        return target_idempotency_key(client_key=client_key, api_key_id=request.auth.pk)


# Iterable gives all six the operationId "target"; an OpenAPI document needs them distinct.
@_target_schema("targetEmail", "Send an email to a user", s.TargetEmailSerializer, "Email")
class TargetEmailView(TargetView):
    medium = Channel.Medium.EMAIL
    serializer_class = s.TargetEmailSerializer


@_target_schema("targetSms", "Send an SMS to a user", s.TargetSMSSerializer, "SMS")
class TargetSmsView(TargetView):
    medium = Channel.Medium.SMS
    serializer_class = s.TargetSMSSerializer


@_target_schema("targetPush", "Send a push notification to a user", s.TargetPushSerializer, "Push")
class TargetPushView(TargetView):
    medium = Channel.Medium.PUSH
    serializer_class = s.TargetPushSerializer


@_target_schema(
    "targetWhatsApp", "Send a WhatsApp message to a user", s.TargetWhatsAppSerializer, "WhatsApp"
)
class TargetWhatsAppView(TargetView):
    medium = Channel.Medium.WHATSAPP
    serializer_class = s.TargetWhatsAppSerializer


@_target_schema(
    "targetWebPush", "Send a web push notification to a user", s.TargetWebPushSerializer, "Web push"
)
class TargetWebPushView(TargetView):
    medium = Channel.Medium.WEB_PUSH
    serializer_class = s.TargetWebPushSerializer


@_target_schema(
    "targetInApp", "Send an in-app message to a user", s.TargetInAppSerializer, "In-app"
)
class TargetInAppView(TargetView):
    medium = Channel.Medium.IN_APP
    serializer_class = s.TargetInAppSerializer


class InAppMessagesView(APIView):
    """GET /api/inApp/getMessages — the in-app messages an app shows its user."""

    # Apps call it with the key they ship.
    client_key_allowed = True

    @extend_schema(
        operation_id="getMessages",
        summary="Get a user's in-app messages",
        description=(
            "The user's newest in-app messages that have not expired, read or not (`read` "
            "says which), newest first. An unknown user has none."
        ),
        parameters=[s.InAppMessagesQuerySerializer],
        responses={200: s.ApiInAppMessagesResponseSerializer, **ERRORS},
        tags=["In-app"],
    )
    def get(self, request):
        query = s.InAppMessagesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        contact = contact_find(email=params.get("email"), user_id=params.get("userId"))
        entries = in_app_inbox(contact=contact, count=params["count"]) if contact else []
        payload = {
            "inAppMessages": [
                s.in_app_message_payload(entry, platform=params.get("platform"))
                for entry in entries
            ]
        }
        return Response(s.ApiInAppMessagesResponseSerializer(payload).data)


class SentMessagesView(APIView):
    """GET /api/users/getSentMessages — what was sent to a user, newest first."""

    @extend_schema(
        operation_id="getSentMessages",
        summary="Get messages sent to a user",
        description=(
            "Messages sent to the user (not those skipped or failed), newest first: 10 by "
            "default, up to 1,000. `campaignId` and `templateId` are both the Waymark "
            "template's id. An unknown user has none."
        ),
        parameters=[s.SentMessagesQuerySerializer],
        responses={200: s.GetSentMessagesResponseSerializer, **ERRORS},
        tags=["Users"],
    )
    def get(self, request):
        query = s.SentMessagesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        contact = contact_find(email=params.get("email"), user_id=params.get("userId"))
        template_ids = list(params.get("campaignIds") or [])
        if "campaignId" in params:
            template_ids.append(params["campaignId"])
        rows = []
        if contact is not None:
            rows = sent_messages(
                contact=contact,
                limit=params["limit"],
                template_ids=template_ids,
                media=s.MESSAGE_MEDIA.get(params.get("messageMedium")),
                sent_from=params.get("startDateTime"),
                sent_until=params.get("endDateTime"),
            )
        return Response({"messages": [s.sent_message_payload(row) for row in rows]})
