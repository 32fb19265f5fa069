"""Users: /api/users/update, bulkUpdate, updateEmail, getFields, registerDeviceToken,
registerBrowserToken."""

import json

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.api.errors import IterableError, check_batch_size, iterable_response
from contacts.api.schema import CONFLICT, ERRORS, envelope_responses
from contacts.api.serializers.users import (
    BulkUpdateUsersEnvelopeSerializer,
    BulkUpdateUsersRequestSerializer,
    BulkUpdateUsersResponseSerializer,
    RegisterBrowserTokenRequestSerializer,
    RegisterDeviceTokenRequestSerializer,
    UpdateEmailRequestSerializer,
    UserFieldsResponseSerializer,
    UserUpdateRequestSerializer,
)
from contacts.models import DeviceToken
from contacts.services.devices import DeviceTokenError, device_token_register
from contacts.services.users import (
    UserError,
    UserUpdate,
    user_email_update,
    user_fields,
    user_update,
    users_update,
)

TAGS = ["Users"]


def _user_update(data) -> UserUpdate:
    return UserUpdate(
        email=data.get("email"),
        user_id=data.get("userId"),
        data=data.get("dataFields") or {},
        prefer_user_id=data.get("preferUserId", False),
        merge_nested=data.get("mergeNestedObjects", False),
    )


def _raise(exc: UserError):
    raise IterableError(str(exc), exc.code, exc.params, http_status=exc.http_status) from exc


@extend_schema_view(
    post=extend_schema(
        operation_id="updateUser",
        summary="Update user data",
        description="Creates the user if none exists; dataFields are merged into the "
        "profile (objects replaced unless mergeNestedObjects). phoneNumber, timeZone and "
        "locale set the contact's phone (E.164), time zone (IANA) and locale.",
        request=UserUpdateRequestSerializer,
        responses=envelope_responses("User updated.", CONFLICT),
        tags=TAGS,
    )
)
class UserUpdateView(APIView):
    """POST /api/users/update — upsert one user."""

    client_key_allowed = True

    def post(self, request):
        serializer = UserUpdateRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            user_update(update=_user_update(serializer.validated_data))
        except UserError as exc:
            _raise(exc)
        return iterable_response("User updated.")


def _item_failure(index, item, errors):
    email = item.get("email") if isinstance(item, dict) else None
    user_id = item.get("userId") if isinstance(item, dict) else None
    if isinstance(errors, dict) and "email" in errors:
        reason = "invalidEmail"
    elif isinstance(errors, dict) and "userId" in errors:
        reason = "invalidUserId"
    else:
        reason = "invalidData"
    if isinstance(errors, dict):
        field, detail = next(iter(errors.items()))
        message = str(detail[0] if isinstance(detail, list) and detail else detail)
        if field != "non_field_errors":
            message = f"{field}: {message}"
    else:
        message = "Each user must be a JSON object."
    return {
        "index": index,
        "email": None if email is None else str(email),
        "userId": None if user_id is None else str(user_id),
        "reason": reason,
        "msg": message,
    }


def _bulk_answer(count, failures):
    failed = {
        name: []
        for name in (
            "conflictEmails",
            "conflictUserIds",
            "invalidEmails",
            "invalidUserIds",
            "invalidDataEmails",
            "invalidDataUserIds",
        )
    }
    lists = {
        "invalidEmail": ("invalidEmails", None),
        "invalidUserId": (None, "invalidUserIds"),
        "invalidData": ("invalidDataEmails", "invalidDataUserIds"),
        "conflict": ("conflictEmails", "conflictUserIds"),
    }
    for failure in failures:
        by_email, by_user_id = lists[failure["reason"]]
        if by_email and failure["email"] is not None:
            failed[by_email].append(failure["email"])
        if by_user_id and failure["userId"] is not None:
            failed[by_user_id].append(failure["userId"])
    return {
        "successCount": count - len(failures),
        "failCount": len(failures),
        # Iterable's deprecated lists: every user that failed, by email or userId.
        "invalidEmails": [f["email"] for f in failures if f["email"] is not None],
        "invalidUserIds": [f["userId"] for f in failures if f["userId"] is not None],
        "failedUpdates": failed,
        "failures": failures,
    }


@extend_schema_view(
    post=extend_schema(
        operation_id="bulkUpdateUser",
        summary="Bulk update user data",
        description="Each user is updated as by /api/users/update; a user that cannot be "
        "(a malformed email or userId, bad data, an identity conflict) is reported in "
        "failedUpdates and in failures (by its position in users) while the others are "
        "updated.",
        request=BulkUpdateUsersRequestSerializer,
        responses={200: BulkUpdateUsersResponseSerializer, **ERRORS},
        tags=TAGS,
    )
)
class UsersBulkUpdateView(APIView):
    """POST /api/users/bulkUpdate — upsert many users, set-based."""

    def post(self, request):
        envelope = BulkUpdateUsersEnvelopeSerializer(data=request.data)
        envelope.is_valid(raise_exception=True)
        items = envelope.validated_data["users"]
        check_batch_size(items, field="users")
        failures, updates, positions = [], [], []
        # One serializer for every user: its fields are built once, not per user.
        validator = UserUpdateRequestSerializer()
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                failures.append(_item_failure(index, item, []))
                continue
            try:
                validated = validator.run_validation(item)
            except serializers.ValidationError as exc:
                failures.append(_item_failure(index, item, exc.detail))
                continue
            updates.append(_user_update(validated))
            positions.append(index)
        try:
            result = users_update(updates=updates)
        except UserError as exc:
            _raise(exc)
        for failure in result.failures:
            failures.append(
                {
                    "index": positions[failure.index],
                    "email": failure.email,
                    "userId": failure.user_id,
                    "reason": failure.reason,
                    "msg": failure.message,
                }
            )
        failures.sort(key=lambda failure: failure["index"])
        return Response(_bulk_answer(len(items), failures))


@extend_schema_view(
    post=extend_schema(
        operation_id="updateEmail",
        summary="Update user email",
        description="Moves a user to a new email address; its events, messages and consent "
        "history stay with it. currentEmail wins over currentUserId. EmailAlreadyExists "
        "when another user has newEmail.",
        request=UpdateEmailRequestSerializer,
        responses=envelope_responses("Email updated.", CONFLICT),
        tags=TAGS,
    )
)
class UserUpdateEmailView(APIView):
    """POST /api/users/updateEmail — give a user a new email address."""

    def post(self, request):
        serializer = UpdateEmailRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            user_email_update(
                new_email=data["newEmail"],
                current_email=data.get("currentEmail"),
                current_user_id=data.get("currentUserId"),
            )
        except UserError as exc:
            _raise(exc)
        return iterable_response("Email updated.")


@extend_schema_view(
    get=extend_schema(
        operation_id="getUserFields",
        summary="Get all user fields",
        description="The profile fields every user has and the data fields in use (read "
        "from the most recently created users), each with its type.",
        responses={200: UserFieldsResponseSerializer, **ERRORS},
        tags=TAGS,
    )
)
class UserFieldsView(APIView):
    """GET /api/users/getFields — field names and their types."""

    def get(self, request):
        return Response({"fields": user_fields()})


# Iterable's push platforms, as Waymark's device platforms.
DEVICE_PLATFORMS = {
    "APNS": DeviceToken.Platform.IOS,
    "APNS_SANDBOX": DeviceToken.Platform.IOS,
    "GCM": DeviceToken.Platform.ANDROID,
}


def _contact_for(data):
    try:
        return user_update(
            update=UserUpdate(
                email=data.get("email"),
                user_id=data.get("userId"),
                prefer_user_id=data.get("preferUserId", False),
            )
        ).contact
    except UserError as exc:
        _raise(exc)


@extend_schema_view(
    post=extend_schema(
        operation_id="registerDeviceToken",
        summary="Register a device token for push",
        description="device.platform APNS and APNS_SANDBOX register an iOS device, GCM an "
        "Android one; the user is created if none exists.",
        request=RegisterDeviceTokenRequestSerializer,
        responses=envelope_responses("Device registered.", CONFLICT),
        tags=TAGS,
    )
)
class RegisterDeviceTokenView(APIView):
    """POST /api/users/registerDeviceToken — a user's app install receives push."""

    client_key_allowed = True

    def post(self, request):
        serializer = RegisterDeviceTokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        device = data["device"]
        try:
            with transaction.atomic():  # no user is created for a refused device
                device_token_register(
                    contact=_contact_for(data),
                    platform=DEVICE_PLATFORMS[device["platform"]],
                    token=device["token"],
                    app_id=device.get("applicationName", ""),
                )
        except DeviceTokenError as exc:
            raise IterableError(str(exc), "BadParams") from exc
        return iterable_response("Device registered.")


def _push_subscription(browser_token: str):
    try:
        subscription = json.loads(browser_token)
    except ValueError:
        subscription = None
    if not isinstance(subscription, dict):
        raise IterableError(
            "browserToken must be the browser's push subscription as "
            "JSON.stringify(subscription) gives it: {endpoint, keys: {p256dh, auth}}.",
            "BadParams",
        )
    return subscription


@extend_schema_view(
    post=extend_schema(
        operation_id="registerBrowserToken",
        summary="Register a browser token for web push",
        description="browserToken is the browser's PushSubscription as "
        "JSON.stringify(subscription) gives it; the user is created if none exists.",
        request=RegisterBrowserTokenRequestSerializer,
        responses=envelope_responses("Browser registered.", CONFLICT),
        tags=TAGS,
    )
)
class RegisterBrowserTokenView(APIView):
    """POST /api/users/registerBrowserToken — a user's browser receives web push."""

    client_key_allowed = True

    def post(self, request):
        serializer = RegisterBrowserTokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        subscription = _push_subscription(data["browserToken"])
        try:
            with transaction.atomic():  # no user is created for a refused device
                device_token_register(
                    contact=_contact_for(data),
                    platform=DeviceToken.Platform.WEB,
                    subscription=subscription,
                )
        except DeviceTokenError as exc:
            raise IterableError(str(exc), "BadParams") from exc
        return iterable_response("Browser registered.")
