"""Channels and message types: /api/channels, /api/messageTypes."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.api.schema import ERRORS
from subscriptions.api.serializers import (
    ChannelSerializer,
    ChannelsResponseSerializer,
    MessageTypeSerializer,
    MessageTypesResponseSerializer,
)
from subscriptions.models import Channel, MessageType


@extend_schema_view(
    get=extend_schema(
        operation_id="channels",
        summary="Get channels",
        responses={200: ChannelsResponseSerializer, **ERRORS},
        tags=["Subscriptions"],
    )
)
class ChannelsView(APIView):
    """GET /api/channels — every channel, with its kind and medium."""

    def get(self, request):
        channels = Channel.objects.order_by("pk")
        return Response({"channels": ChannelSerializer(channels, many=True).data})


@extend_schema_view(
    get=extend_schema(
        operation_id="messageTypes",
        summary="List message types",
        responses={200: MessageTypesResponseSerializer, **ERRORS},
        tags=["Subscriptions"],
    )
)
class MessageTypesView(APIView):
    """GET /api/messageTypes — every message type, with its channel and policy."""

    def get(self, request):
        message_types = MessageType.objects.order_by("pk")
        return Response({"messageTypes": MessageTypeSerializer(message_types, many=True).data})
