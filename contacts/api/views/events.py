"""Events: /api/events/..."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.views import APIView

from contacts.api.errors import IterableError, iterable_response
from contacts.api.schema import envelope_responses
from contacts.api.serializers import TrackRequestSerializer
from contacts.services import ContactLookupError, EventIdConflict, event_track


@extend_schema_view(
    post=extend_schema(
        operation_id="trackEvent",
        summary="Track an event",
        request=TrackRequestSerializer,
        responses=envelope_responses("Event with id: … tracked."),
        tags=["Events"],
    )
)
class TrackEventView(APIView):
    """POST /api/events/track — record one event; matching live journeys start."""

    client_key_allowed = True

    def post(self, request):
        serializer = TrackRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
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
