from rest_framework.views import APIView

from contacts.api.errors import IterableError, iterable_response
from contacts.api.serializers import TrackRequestSerializer
from contacts.services import ContactLookupError, event_track


class TrackEventView(APIView):
    """POST /api/events/track — record one event; matching live journeys start."""

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
        except ContactLookupError as exc:
            raise IterableError(str(exc), "BadParams") from exc
        event_id = tracked.event.client_event_id
        return iterable_response(f"Event with id: {event_id} tracked.", params={"id": event_id})
