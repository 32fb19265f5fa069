"""A user's profile and subscriptions: /api/users/{email}, getByEmail, byUserId/{userId},
updateSubscriptions, bulkUpdateSubscriptions."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.api.schema import ERRORS
from contacts.services import contact_find
from subscriptions.api.serializers import (
    GetByEmailQuerySerializer,
    UserResponseSerializer,
    user_profile,
)
from subscriptions.selectors import subscription_ids


def _user_response(contact):
    # Iterable answers an unknown user with an empty object and a 200.
    if contact is None:
        return Response({})
    return Response({"user": user_profile(contact, subscription_ids(contact=contact))})


USER_RESPONSES = {200: UserResponseSerializer, **ERRORS}


@extend_schema_view(
    get=extend_schema(
        operation_id="getUser",
        summary="Get a user by email (path parameter)",
        responses=USER_RESPONSES,
        tags=["Users"],
    )
)
class UserByEmailView(APIView):
    """GET /api/users/{email} — the user's profile and subscriptions; {} when unknown."""

    def get(self, request, email):
        return _user_response(contact_find(email=email))


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
    )
)
class UserByUserIdView(APIView):
    """GET /api/users/byUserId/{userId} — the user's profile and subscriptions; {} when unknown."""

    def get(self, request, userId):
        return _user_response(contact_find(user_id=userId))
