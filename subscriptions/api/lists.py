"""POST /api/lists/unsubscribe: here rather than in contacts, because a
channel unsubscribe is a consent change, which only subscriptions makes."""

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.api.schema import ERRORS
from contacts.api.serializers.lists import ListBulkResponseSerializer, UnsubscribeRequestSerializer
from contacts.api.views.events import validate_bulk
from contacts.api.views.lists import list_bulk_answer, subscribers_from, unknown_list
from contacts.services.lists import ListNotFound, list_unsubscribe
from subscriptions.models import ConsentSource
from subscriptions.services import marketing_email_unsubscribe


@extend_schema_view(
    post=extend_schema(
        operation_id="unsubscribe",
        summary="Remove users from a list",
        description="The users leave the list (one who is not a member is left as is); an "
        "unknown user is reported by its position in subscribers. With channelUnsubscribe, "
        "each also unsubscribes from the marketing email channels, recorded in the consent "
        "ledger under this API key's name. An unknown listId is BadParams, and nothing is "
        "written.",
        request=UnsubscribeRequestSerializer,
        responses={200: ListBulkResponseSerializer, **ERRORS},
        tags=["Lists"],
    )
)
class ListUnsubscribeView(APIView):
    """POST /api/lists/unsubscribe — remove many users from a list, set-based."""

    def post(self, request):
        serializer = validate_bulk(UnsubscribeRequestSerializer, request.data, field="subscribers")
        data = serializer.validated_data
        subscribers, positions, failures = subscribers_from(data["subscribers"])
        try:
            with transaction.atomic():
                change = list_unsubscribe(list_id=data["listId"], subscribers=subscribers)
                if data["channelUnsubscribe"]:
                    campaign = data.get("campaignId")
                    note = (
                        f"API key {request.auth.name!r}: lists/unsubscribe, list {data['listId']}"
                    )
                    if campaign is not None:
                        note += f", campaign {campaign}"
                    marketing_email_unsubscribe(
                        contact_ids=change.contact_ids.values(),
                        source=ConsentSource.API,
                        # The ledger's note holds 255 characters; the key's name may be long.
                        note=note[:255],
                    )
        except ListNotFound as exc:
            raise unknown_list(exc) from exc
        return Response(
            list_bulk_answer(
                len(data["subscribers"]), subscribers, positions, failures, change.failures
            )
        )
