from drf_spectacular.utils import extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
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


class NotFoundView(APIView):
    """Every path under /api/ that no view serves: Iterable's 404 envelope.

    Authentication runs first, so a wrong key gets its 401 here too.
    """

    client_key_allowed = True
    schema = None  # not an endpoint: what answers for the paths that are none

    def _not_found(self, request, *args, **kwargs):
        raise NotFound(f"No such endpoint: {request.method} {request.path}")

    get = post = put = patch = delete = head = options = _not_found


class ApiSchemaView(SpectacularAPIView):
    """The OpenAPI description of /api/: readable without a key."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = ()


class ApiDocsView(SpectacularSwaggerView):
    """Interactive docs (Swagger UI, served from this site)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = ()
