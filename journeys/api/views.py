"""Journeys (Iterable's workflows): /api/journeys and /api/workflows/..."""

from django.db.models import OuterRef, Subquery
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.api.errors import IterableError, iterable_response
from contacts.api.schema import ERRORS, envelope_responses
from journeys.api import schema  # noqa: F401  (registers the request's schema)
from journeys.api.serializers import (
    STATE_NAMES,
    GetJourneysResponseSerializer,
    JourneyDetailsSerializer,
    JourneyListQuerySerializer,
    TriggerWorkflowRequestSerializer,
)
from journeys.models import Journey, Step
from journeys.services.entry import TriggerError, journey_trigger


@extend_schema_view(
    get=extend_schema(
        operation_id="getJourneys",
        summary="Get journeys (workflows)",
        parameters=[JourneyListQuerySerializer],
        responses={
            200: OpenApiResponse(GetJourneysResponseSerializer, description="One page"),
            **ERRORS,
        },
        tags=["Journeys"],
    )
)
class JourneyListView(APIView):
    """GET /api/journeys — the journeys, a page at a time."""

    def get(self, request):
        query = request.query_params.copy()
        # An unencoded "+name" reaches us as " name".
        if query.get("sort", "").startswith(" "):
            query["sort"] = "+" + query["sort"][1:]
        serializer = JourneyListQuerySerializer(data=query)
        serializer.is_valid(raise_exception=True)
        params = serializer.validated_data
        page, size = params["page"], params["pageSize"]

        journeys = Journey.objects.all()
        if params.get("state"):
            journeys = journeys.filter(state__in={STATE_NAMES[s] for s in params["state"]})
        else:
            journeys = journeys.exclude(state=Journey.State.ARCHIVED)
        total = journeys.count()
        first_step = (
            Step.objects.non_polymorphic()
            .filter(journey=OuterRef("pk"))
            .order_by("position", "id")
            .values("pk")[:1]
        )
        offset = (page - 1) * size
        rows = (
            journeys.select_related("created_by")
            .prefetch_related("triggers")
            .annotate(start_step_id=Subquery(first_step))
            .order_by(*params["sort"])[offset : offset + size]
            if offset < total
            else []
        )
        body = {
            "journeys": JourneyDetailsSerializer(rows, many=True).data,
            "totalJourneysCount": total,
        }
        if page > 1:
            body["previousPageUrl"] = _page_url(request, query, min(page - 1, _last(total, size)))
        if offset + size < total:
            body["nextPageUrl"] = _page_url(request, query, page + 1)
        return Response(body)


def _last(total, size):
    return max(1, -(-total // size))


def _page_url(request, query, page):
    query = query.copy()
    query["page"] = str(page)
    # A key sent as ?api_key= is not written into the answer (nor, from there, into logs).
    query.pop("api_key", None)
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


@extend_schema_view(
    post=extend_schema(
        operation_id="triggerWorkflow",
        summary="Trigger a journey (workflow)",
        description=(
            "Starts a live journey for one existing user (email or userId) at once, or for "
            "every member of a list (listId) asynchronously. dataFields become the trigger "
            "data of each enrollment."
        ),
        request=TriggerWorkflowRequestSerializer,
        responses=envelope_responses("Triggered (a list: queued)."),
        tags=["Journeys"],
    )
)
class TriggerWorkflowView(APIView):
    """POST /api/workflows/triggerWorkflow — a journey for a user or a whole list."""

    def post(self, request):
        serializer = TriggerWorkflowRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            triggered = journey_trigger(
                journey_id=data["workflowId"],
                email=data.get("email"),
                user_id=data.get("userId"),
                list_id=data.get("listId"),
                data=data["dataFields"],
            )
        except TriggerError as exc:
            raise IterableError(str(exc), "BadParams") from exc
        journey_id = triggered.journey.pk
        if triggered.queued:
            return iterable_response(
                f"Journey {journey_id} triggered for list {triggered.list_id}: its members "
                "are being enrolled.",
                params={"workflowId": journey_id, "listId": triggered.list_id},
            )
        enrolled = triggered.enrollment is not None
        return iterable_response(
            f"Journey {journey_id} triggered."
            if enrolled
            else f"Journey {journey_id} not triggered: the user is on it already, or was "
            "and may not enter again, or is outside its audience.",
            params={"workflowId": journey_id, "enrolled": enrolled},
        )
