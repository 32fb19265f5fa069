"""Events: /api/events/..."""

import functools
from datetime import UTC

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.api.errors import IterableError, check_batch_size, iterable_response
from contacts.api.schema import ERRORS, envelope_responses
from contacts.api.serializers import TrackRequestSerializer
from contacts.api.serializers.events import (
    BulkTrackRequestSerializer,
    BulkTrackResponseSerializer,
    UserEventsQuerySerializer,
    UserEventsResponseSerializer,
)
from contacts.services import ContactLookupError, EventIdConflict, event_track
from contacts.services.events import EventInput, contact_events, events_record_many

TAGS = ["Events"]


@extend_schema_view(
    post=extend_schema(
        operation_id="trackEvent",
        summary="Track an event",
        request=TrackRequestSerializer,
        responses=envelope_responses("Event with id: … tracked."),
        tags=TAGS,
    )
)
class TrackEventView(APIView):
    """POST /api/events/track — record one event; matching live journeys start."""

    client_key_allowed = True
    # The busiest endpoint: one serializer, its fields built once, validates
    # every request (validation keeps no state on it), where a serializer per
    # request would copy its fields each time, most of a request's own cost.
    request_serializer = TrackRequestSerializer()

    def post(self, request):
        data = self.request_serializer.run_validation(request.data)
        try:
            tracked = event_track(
                name=data["eventName"],
                email=data.get("email"),
                user_id=data.get("userId"),
                data=data.get("dataFields") or {},
                occurred_at=data.get("createdAt"),
                client_event_id=data.get("id"),
                campaign_id=data.get("campaignId"),
                template_id=data.get("templateId"),
            )
        except (ContactLookupError, EventIdConflict) as exc:
            raise IterableError(str(exc), "BadParams") from exc
        event_id = tracked.event.client_event_id
        return iterable_response(f"Event with id: {event_id} tracked.", params={"id": event_id})


def first_item_error(errors, field):
    """The first error of a bulk body's items, named by position: events[3].eventName: ..."""
    # DRF reports a list's errors as a list by position, or a dict of positions.
    pairs = errors.items() if isinstance(errors, dict) else enumerate(errors)
    for index, error in sorted(pairs, key=lambda pair: int(pair[0])):
        if error and isinstance(error, dict):
            name, messages = next(iter(error.items()))
            where = f"{field}[{index}]" + ("" if name == "non_field_errors" else f".{name}")
            return f"{where}: {messages[0] if isinstance(messages, list) else messages}"
    return f"Invalid {field}."


def validate_bulk(serializer_class, data, *, field):
    """The bulk body validated whole (a wrong shape writes nothing), after a
    check of its size; an item's error names its position."""
    items = data.get(field) if isinstance(data, dict) else None
    if isinstance(items, list):
        # Before the items are looked at: a huge batch costs nothing to refuse.
        check_batch_size(items, field=field)
    serializer = serializer_class(data=data)
    try:
        serializer.is_valid(raise_exception=True)
    except serializers.ValidationError as exc:
        errors = exc.detail.get(field) if isinstance(exc.detail, dict) else None
        if isinstance(errors, list | dict) and errors and "non_field_errors" not in errors:
            raise IterableError(
                first_item_error(errors, field), "BadParams", {"errors": exc.detail}
            ) from exc
        raise
    return serializer


@functools.lru_cache(maxsize=4096)
def _email_is_valid(email):
    if len(email) > 254:
        return False
    try:
        validate_email(email.strip())
    except DjangoValidationError:
        return False
    return True


def identity_failure(index, data):
    """The failure of a bulk item whose email is malformed, or which names
    a user by a blank userId only; None when its identity is usable."""
    email, user_id = data.get("email"), data.get("userId")
    if email and not _email_is_valid(email):
        reason, msg = "invalidEmail", f"Invalid email: {email}"
    elif not email and not (user_id or "").strip():
        reason, msg = "invalidUserId", "A userId must not be blank."
    else:
        return None
    return {"index": index, "email": email, "userId": user_id, "reason": reason, "msg": msg}


def _bulk_track_answer(count, failures):
    invalid_emails = [f["email"] for f in failures if f["reason"] == "invalidEmail"]
    invalid_user_ids = [f["userId"] for f in failures if f["reason"] == "invalidUserId"]
    return {
        "successCount": count - len(failures),
        "failCount": len(failures),
        "invalidEmails": invalid_emails,
        "invalidUserIds": invalid_user_ids,
        "disallowedEventNames": [],
        "failedUpdates": {
            "invalidEmails": invalid_emails,
            "invalidUserIds": invalid_user_ids,
            "notFoundEmails": [],
            "notFoundUserIds": [],
            "forgottenEmails": [],
            "forgottenUserIds": [],
        },
        "failures": failures,
    }


@extend_schema_view(
    post=extend_schema(
        operation_id="trackBulk",
        summary="Bulk track events",
        description="Each event is recorded as by /api/events/track. An event with a "
        "malformed email, or whose id belongs to another user's event, is not stored and "
        "is reported in failCount and in failures (by its position in events); the others "
        "are. A body whose shape is wrong is refused whole, and nothing is stored.",
        request=BulkTrackRequestSerializer,
        responses={200: BulkTrackResponseSerializer, **ERRORS},
        tags=TAGS,
    )
)
class TrackBulkView(APIView):
    """POST /api/events/trackBulk — record many events, set-based."""

    def post(self, request):
        serializer = validate_bulk(BulkTrackRequestSerializer, request.data, field="events")
        events = serializer.validated_data["events"]
        items, positions, failures = [], [], []
        for index, data in enumerate(events):
            failure = identity_failure(index, data)
            if failure:
                failures.append(failure)
                continue
            positions.append(index)
            items.append(
                EventInput(
                    name=data["eventName"],
                    email=data.get("email"),
                    user_id=data.get("userId"),
                    data=data.get("dataFields") or {},
                    occurred_at=data.get("createdAt"),
                    client_event_id=data.get("id"),
                    campaign_id=data.get("campaignId"),
                    template_id=data.get("templateId"),
                )
            )
        result = events_record_many(items=items) if items else None
        for failure in result.failures if result else []:
            item = items[failure.index]
            failures.append(
                {
                    "index": positions[failure.index],
                    "email": item.email,
                    "userId": item.user_id,
                    "reason": failure.reason,
                    "msg": failure.msg,
                }
            )
        failures.sort(key=lambda failure: failure["index"])
        return Response(_bulk_track_answer(len(events), failures))


def _event_json(event):
    # Iterable's readers take a missing identity as absent, never as null.
    answer = {
        "_id": event.client_event_id,
        "eventName": event.name,
        "eventType": "customEvent",
        "createdAt": event.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +00:00"),
        "dataFields": event.data,
    }
    optional = {
        "email": event.contact.email,
        "userId": event.contact.user_id,
        "campaignId": event.campaign_id,
        "templateId": event.template_id,
    }
    answer.update({key: value for key, value in optional.items() if value is not None})
    return answer


def _user_events(request, **identity):
    query = UserEventsQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    events = contact_events(**identity, limit=query.validated_data["limit"])
    # Iterable answers an unknown user with no events, not with an error.
    return Response({"events": [_event_json(event) for event in events or []]})


_READ_RESPONSES = {200: UserEventsResponseSerializer, **ERRORS}


@extend_schema_view(
    get=extend_schema(
        operation_id="User events",
        summary="Get user events",
        description="The user's latest events, newest first (limit: 30 by default, at most "
        "200). An unknown email has no events.",
        parameters=[UserEventsQuerySerializer],
        responses=_READ_RESPONSES,
        tags=TAGS,
    )
)
class UserEventsByEmailView(APIView):
    """GET /api/events/{email} — a user's events, by email."""

    def get(self, request, email):
        return _user_events(request, email=email)


@extend_schema_view(
    get=extend_schema(
        operation_id="User events by userId",
        summary="Get user events by userId",
        description="The user's latest events, newest first (limit: 30 by default, at most "
        "200). An unknown userId has no events.",
        parameters=[UserEventsQuerySerializer],
        responses=_READ_RESPONSES,
        tags=TAGS,
    )
)
class UserEventsByUserIdView(APIView):
    """GET /api/events/byUserId/{userId} — a user's events, by userId."""

    def get(self, request, userId):
        return _user_events(request, user_id=userId)
