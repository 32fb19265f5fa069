"""Subscription groups (a list, a channel, a message type), one user or many at a time:
/api/subscriptions/{subscriptionGroup}/{subscriptionGroupId}/..."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.http import HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import ParseError, UnsupportedMediaType, ValidationError
from rest_framework.views import APIView

from contacts.api.errors import (
    IterableError,
    check_batch_size,
    iterable_exception_handler,
    iterable_response,
)
from contacts.api.schema import ERRORS, envelope_responses
from contacts.services import contact_find
from subscriptions.api.serializers import (
    BulkSubscriptionActionQuerySerializer,
    BulkSubscriptionActionResultSerializer,
    BulkSubscriptionActionSerializer,
    DoubleOptInSubscriptionsSerializer,
    SubscriptionGroupPathSerializer,
    UserEmailPathSerializer,
    UserIdPathSerializer,
)
from subscriptions.api.users import api_note, first_error
from subscriptions.models import ConsentSource, MessageType
from subscriptions.services import ConsentError, double_opt_in_request, subscription_group_set

GROUP_PARAMETERS = [
    OpenApiParameter(
        "subscriptionGroup",
        str,
        OpenApiParameter.PATH,
        description="emailList, messageType or messageChannel (any case)",
    ),
    OpenApiParameter("subscriptionGroupId", int, OpenApiParameter.PATH),
]


def _group(kwargs):
    path = SubscriptionGroupPathSerializer(data=kwargs)
    path.is_valid(raise_exception=True)
    return path.validated_data["subscriptionGroup"], path.validated_data["subscriptionGroupId"]


def _set(request, kwargs, users, *, subscribe):
    group, group_id = _group(kwargs)
    try:
        return subscription_group_set(
            users=users,
            group=group,
            group_id=group_id,
            subscribe=subscribe,
            source=ConsentSource.API,
            note=api_note(request),
        )
    except ConsentError as exc:
        raise IterableError(str(exc), "BadParams") from exc


def _one(request, kwargs, identity, *, subscribe, unknown_code):
    result = _set(request, kwargs, [identity], subscribe=subscribe)
    if result.failures:
        (failure,) = result.failures
        code = unknown_code if failure.kind == "unknown_user" else "BadParams"
        raise IterableError(failure.reason, code)
    return iterable_response("User subscribed." if subscribe else "User unsubscribed.")


SINGLE_RESPONSES = envelope_responses("User subscribed / unsubscribed.")


@extend_schema_view(
    patch=extend_schema(
        operation_id="subscribeSingleUser",
        summary="Subscribe a single user",
        parameters=GROUP_PARAMETERS,
        request=None,
        responses=SINGLE_RESPONSES,
        tags=["Subscriptions"],
    ),
    delete=extend_schema(
        operation_id="unsubscribeSingleUser",
        summary="Unsubscribe a single user",
        parameters=GROUP_PARAMETERS,
        request=None,
        responses=SINGLE_RESPONSES,
        tags=["Subscriptions"],
    ),
)
class SubscriptionUserView(APIView):
    """PATCH subscribes the user named by email (created when unknown) to the
    list, channel or message type; DELETE unsubscribes (UnknownEmailError when unknown)."""

    def _identity(self, userEmail):
        email = UserEmailPathSerializer(data={"email": userEmail})
        email.is_valid(raise_exception=True)
        return (email.validated_data["email"], None)

    def patch(self, request, userEmail, **kwargs):
        identity = self._identity(userEmail)
        return _one(request, kwargs, identity, subscribe=True, unknown_code="UnknownEmailError")

    def delete(self, request, userEmail, **kwargs):
        identity = self._identity(userEmail)
        return _one(request, kwargs, identity, subscribe=False, unknown_code="UnknownEmailError")


@extend_schema_view(
    patch=extend_schema(
        operation_id="subscribeSingleUserByUserId",
        summary="Subscribe a single user by their userId",
        parameters=GROUP_PARAMETERS,
        request=None,
        responses=SINGLE_RESPONSES,
        tags=["Subscriptions"],
    ),
    delete=extend_schema(
        operation_id="unsubscribeSingleUserByUserId",
        summary="Unsubscribe a single user by userId",
        parameters=GROUP_PARAMETERS,
        request=None,
        responses=SINGLE_RESPONSES,
        tags=["Subscriptions"],
    ),
)
class SubscriptionUserByUserIdView(APIView):
    """As SubscriptionUserView, for the user named by userId (UnknownUserIdError when unknown)."""

    def _identity(self, userId):
        user_id = UserIdPathSerializer(data={"userId": userId})
        user_id.is_valid(raise_exception=True)
        return (None, user_id.validated_data["userId"])

    def patch(self, request, userId, **kwargs):
        identity = self._identity(userId)
        return _one(request, kwargs, identity, subscribe=True, unknown_code="UnknownUserIdError")

    def delete(self, request, userId, **kwargs):
        identity = self._identity(userId)
        return _one(request, kwargs, identity, subscribe=False, unknown_code="UnknownUserIdError")


BULK_RESULT = inline_serializer(
    name="BulkSubscriptionActionResponse",
    fields={
        "msg": serializers.CharField(),
        "code": serializers.CharField(),
        "params": BulkSubscriptionActionResultSerializer(),
    },
)


@extend_schema_view(
    put=extend_schema(
        operation_id="bulkSubscriptionAction",
        summary="Bulk subscription action on a list of users",
        parameters=[*GROUP_PARAMETERS, BulkSubscriptionActionQuerySerializer],
        request=BulkSubscriptionActionSerializer,
        responses={200: OpenApiResponse(BULK_RESULT), **ERRORS},
        tags=["Subscriptions"],
    )
)
class SubscriptionGroupBulkView(APIView):
    """PUT ?action=subscribe|unsubscribe — many users, by email and by userId, at once:
    subscribing creates unknown users, unsubscribing names them as failures."""

    def put(self, request, **kwargs):
        query = BulkSubscriptionActionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        body = BulkSubscriptionActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        emails, user_ids = body.validated_data["users"], body.validated_data["usersByUserId"]
        check_batch_size(emails + user_ids, field="users and usersByUserId")
        invalid_emails, users = [], []
        for email in emails:
            try:
                validate_email(email)
            except DjangoValidationError:
                invalid_emails.append(email)
            else:
                users.append((email, None))
        invalid_user_ids = [user_id for user_id in user_ids if not user_id.strip()]
        users += [(None, user_id) for user_id in user_ids if user_id.strip()]
        subscribe = query.validated_data["action"] == "subscribe"
        result = _set(request, kwargs, users, subscribe=subscribe)
        failures = [
            {"email": failure.email, "reason": failure.reason}
            if failure.email
            else {"userId": failure.user_id, "reason": failure.reason}
            for failure in result.failures
        ]
        params = {
            "successCount": len(result.applied),
            "failCount": len(failures) + len(invalid_emails) + len(invalid_user_ids),
            "invalidEmails": invalid_emails,
            "invalidUserIds": invalid_user_ids,
            "failures": failures,
        }
        verb = "subscribed" if subscribe else "unsubscribed"
        return iterable_response(f"{params['successCount']} users {verb}.", params=params)


ACCEPTED = "Request for double opt-in subscription accepted"


def _text(message, status):
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _double_opt_in_errors(exc, context):
    """Iterable's formats for this endpoint: a body that is no JSON gets a JSON
    error object, a request it cannot act on a line of plain text; the rest
    (key, rate limit) the usual envelope."""
    if isinstance(exc, ParseError | UnsupportedMediaType):
        return JsonResponse(
            {
                "error": {"status": 400},
                "message": str(exc.detail),
                "code": "BadJsonBody",
                "data": {"underlying": {}},
            },
            status=400,
        )
    if isinstance(exc, ValidationError):
        return _text(first_error(exc.detail), 400)
    return iterable_exception_handler(exc, context)


PLAIN_TEXT = OpenApiTypes.STR
DOUBLE_OPT_IN_PARSE_ERROR = inline_serializer(
    name="ErrorHttpResponse",
    fields={
        "error": inline_serializer(
            name="ErrorWithStatus", fields={"status": serializers.IntegerField()}
        ),
        "message": serializers.CharField(),
        "code": serializers.CharField(),
        "data": serializers.DictField(),
    },
)


@extend_schema_view(
    post=extend_schema(
        operation_id="subscribeSingleUserToDoubleOptIn",
        summary="Trigger a double opt-in subscription flow",
        request=DoubleOptInSubscriptionsSerializer,
        responses={
            (202, "text/plain"): OpenApiResponse(PLAIN_TEXT, description=ACCEPTED),
            (400, "text/plain"): OpenApiResponse(
                PLAIN_TEXT, description="Why the request cannot be acted on"
            ),
            (400, "application/json"): OpenApiResponse(
                DOUBLE_OPT_IN_PARSE_ERROR, description="The body is not JSON"
            ),
            **{code: ERRORS[code] for code in (401, 403, 413, 429)},
        },
        tags=["Subscriptions"],
    )
)
class SubscribeToDoubleOptInView(APIView):
    """POST /api/subscriptions/subscribeToDoubleOptIn — subscribe a known user to
    double-opt-in message types: each awaits confirmation, and the link goes out
    by email. Answers 202 in plain text, as Iterable does."""

    def get_exception_handler(self):
        return _double_opt_in_errors

    def post(self, request):
        serializer = DoubleOptInSubscriptionsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        contact = contact_find(email=data.get("email"), user_id=data.get("userId"))
        if contact is None:
            named = f"email: {data['email']}" if data.get("email") else f"userId: {data['userId']}"
            return _text(f"User not found for {named}", 400)
        ids = list(dict.fromkeys(data["messageTypeIds"]))
        message_types = {mt.pk: mt for mt in MessageType.objects.filter(pk__in=ids)}
        unknown = [str(pk) for pk in ids if pk not in message_types]
        if unknown:
            return _text(f"Unknown message type ids: {', '.join(unknown)}", 400)
        try:
            double_opt_in_request(
                contact=contact,
                message_types=[message_types[pk] for pk in ids],
                phone=data.get("phoneNumber"),
                source=ConsentSource.API,
                note=api_note(request),
            )
        except ConsentError as exc:
            return _text(str(exc), 400)
        return _text(ACCEPTED, 202)
