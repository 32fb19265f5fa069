"""drf-spectacular extensions for the journeys API (imported by journeys.api.views)."""

from drf_spectacular.extensions import OpenApiSerializerExtension


class TriggerWorkflowRequestScheme(OpenApiSerializerExtension):
    """A trigger names one user (email or userId) or a list: one of the three
    is required, which the fields alone (all optional) do not say."""

    target_class = "journeys.api.serializers.TriggerWorkflowRequestSerializer"

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if direction == "request":
            schema["anyOf"] = [
                {"required": ["email"]},
                {"required": ["userId"]},
                {"required": ["listId"]},
            ]
        return schema
