"""A user's profile and subscriptions: /api/users/{email}, getByEmail, byUserId/{userId},
updateSubscriptions, bulkUpdateSubscriptions."""

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.api.errors import IterableError, check_batch_size, iterable_response
from contacts.api.schema import ERRORS, IterableResponse, envelope_responses
from contacts.services import contact_find
from contacts.services.forget import contact_delete
from subscriptions.api.serializers import (
    BulkUpdateSubscriptionsResponseSerializer,
    BulkUpdateSubscriptionsSchema,
    BulkUpdateSubscriptionsSerializer,
    GetByEmailQuerySerializer,
    UpdateSubscriptionsSerializer,
    UserResponseSerializer,
    user_profile,
)
from subscriptions.models import ConsentSource
from subscriptions.selectors import subscription_ids
from subscriptions.services import SubscriptionsUpdate, subscriptions_update


def _user_response(contact):
    # Iterable answers an unknown user with an empty object and a 200.
    if contact is None:
        return Response({})
    return Response({"user": user_profile(contact, subscription_ids(contact=contact))})


USER_RESPONSES = {200: UserResponseSerializer, **ERRORS}


def _delete_user(request, contact, named):
    """DELETE /api/users/...: the contact and everything kept about it are
    deleted. As in Iterable, nothing stops the address coming back (that is
    users/forget); an unknown user is a 400 and deletes nothing."""
    if contact is None:
        raise IterableError(f"No user has that {named}.", "BadParams")
    contact_delete(contact=contact, actor=f"API key “{request.auth.name}”", source="api")
    return iterable_response("The user is deleted.")


DELETE_SCHEMA = {
    "summary": "Delete a user",
    "description": "Deletes the user and everything kept about them (profile, events, "
    "devices, consent records, messages). Unlike users/forget, the address may come back.",
    "responses": envelope_responses("The user is deleted."),
    "tags": ["Users"],
}


@extend_schema_view(
    get=extend_schema(
        operation_id="getUser",
        summary="Get a user by email (path parameter)",
        responses=USER_RESPONSES,
        tags=["Users"],
    ),
    delete=extend_schema(operation_id="deleteUser", **DELETE_SCHEMA),
)
class UserByEmailView(APIView):
    """GET /api/users/{email} — the user's profile and subscriptions; {} when unknown.
    DELETE — delete the user."""

    def get(self, request, email):
        return _user_response(contact_find(email=email))

    def delete(self, request, email):
        return _delete_user(request, contact_find(email=email), "email")


@extend_schema_view(
    get=extend_schema(
        operation_id="getUserByEmail",
        summary="Get a user by email (query parameter)",
        parameters=[GetByEmailQuerySerializer],
        responses=USER_RESPONSES,
        tags=["Users"],
    )
)
class UserGetByEmailView(APIView):
    """GET /api/users/getByEmail?email= — as GET /api/users/{email}, for any address."""

    def get(self, request):
        query = GetByEmailQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return _user_response(contact_find(email=query.validated_data["email"]))


@extend_schema_view(
    get=extend_schema(
        operation_id="getUserById",
        summary="Get a user by userId (path parameter)",
        parameters=[OpenApiParameter("userId", str, OpenApiParameter.PATH)],
        responses=USER_RESPONSES,
        tags=["Users"],
    ),
    delete=extend_schema(
        operation_id="deleteUserByUserId",
        parameters=[OpenApiParameter("userId", str, OpenApiParameter.PATH)],
        **DELETE_SCHEMA,
    ),
)
class UserByUserIdView(APIView):
    """GET /api/users/byUserId/{userId} — the user's profile and subscriptions; {} when unknown.
    DELETE — delete the user."""

    def get(self, request, userId):
        return _user_response(contact_find(user_id=userId))

    def delete(self, request, userId):
        return _delete_user(request, contact_find(user_id=userId), "userId")


def api_note(request, data=None) -> str:
    """The ledger's note for a change made through the API: the key, and the
    campaign and template Iterable attributes it to."""
    note = f"API key {request.auth.name}"
    for field, label in (("campaignId", "campaign"), ("templateId", "template")):
        if data and data.get(field) is not None:
            note += f", {label} {data[field]}"
    return note


def _update(data) -> SubscriptionsUpdate:
    return SubscriptionsUpdate(
        email=data.get("email"),
        user_id=data.get("userId"),
        email_list_ids=data.get("emailListIds"),
        unsubscribed_channel_ids=data.get("unsubscribedChannelIds"),
        unsubscribed_message_type_ids=data.get("unsubscribedMessageTypeIds"),
        subscribed_message_type_ids=data.get("subscribedMessageTypeIds"),
        validate_ids=data["validateIds"],
        validate_channel_alignment=data["validateChannelAlignment"],
    )


@extend_schema_view(
    post=extend_schema(
        operation_id="updateSubscriptions",
        summary="Update user subscriptions",
        request=UpdateSubscriptionsSerializer,
        responses={
            **envelope_responses("Subscriptions updated."),
            409: OpenApiResponse(IterableResponse, description="The userId is another user's"),
        },
        tags=["Users"],
    )
)
class UpdateSubscriptionsView(APIView):
    """POST /api/users/updateSubscriptions — replace the lists and subscriptions given
    (a field left out is left as it is); an unknown user is created."""

    def post(self, request):
        serializer = UpdateSubscriptionsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = subscriptions_update(
            updates=[_update(data)], source=ConsentSource.API, note=api_note(request, data)
        )
        if result.failures:
            failure = result.failures[0]
            if failure.kind == "conflict":
                raise IterableError(failure.reason, "BadParams", http_status=409)
            raise IterableError(failure.reason, "BadParams")
        return iterable_response("Subscriptions updated.")


@extend_schema_view(
    post=extend_schema(
        operation_id="bulkUpdateSubscriptions",
        summary="Bulk update user subscriptions",
        request=BulkUpdateSubscriptionsSchema,
        responses={200: BulkUpdateSubscriptionsResponseSerializer, **ERRORS},
        tags=["Users"],
    )
)
class BulkUpdateSubscriptionsView(APIView):
    """POST /api/users/bulkUpdateSubscriptions — updateSubscriptions for many users:
    each request applies or fails alone, and the answer counts and names the failures."""

    def post(self, request):
        body = BulkUpdateSubscriptionsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        items = body.validated_data["updateSubscriptionsRequests"]
        check_batch_size(items, field="updateSubscriptionsRequests")
        answer = {
            "successCount": 0,
            "failCount": 0,
            "invalidEmails": [],
            "invalidUserIds": [],
            "validEmailFailures": [],
            "validUserIdFailures": [],
            "failures": [],
        }
        positions, updates = [], []
        # One serializer for every request: its fields are built once, not per item.
        validator = UpdateSubscriptionsSerializer()
        for index, item in enumerate(items):
            try:
                validated = validator.run_validation(item)
            except serializers.ValidationError as exc:
                # A null item is refused as a whole, not field by field.
                errors = (
                    exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
                )
            else:
                positions.append(index)
                updates.append(_update(validated))
                continue
            identity = item if isinstance(item, dict) else {}
            _fail(answer, index, identity, first_error(errors), invalid=errors.keys())
        result = subscriptions_update(
            updates=updates, source=ConsentSource.API, note=api_note(request)
        )
        for failure in result.failures:
            identity = {"email": failure.email, "userId": failure.user_id}
            _fail(answer, positions[failure.index], identity, failure.reason, invalid=())
        answer["failures"].sort(key=lambda failure: failure["index"])
        answer["successCount"] = len(result.applied)
        answer["failCount"] = len(answer["failures"])
        return Response(answer)


def first_error(errors):
    """The first message of a serializer's errors, with the field it is about."""
    if isinstance(errors, dict):
        field, detail = next(iter(errors.items()))
        message = first_error(detail)
        return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(errors, list) and errors:
        return first_error(errors[0])
    return str(errors)


def _fail(answer, index, identity, reason, *, invalid):
    email, user_id = identity.get("email"), identity.get("userId")
    failure = {"index": index, "reason": reason}
    if isinstance(email, str):
        failure["email"] = email
        answer["invalidEmails" if "email" in invalid else "validEmailFailures"].append(email)
    elif isinstance(user_id, str):
        failure["userId"] = user_id
        answer["invalidUserIds" if "userId" in invalid else "validUserIdFailures"].append(user_id)
    answer["failures"].append(failure)
