"""What drf-spectacular needs to describe the API: the key scheme and the envelope.

Imported by contacts.apps.ContactsConfig.ready(), as drf-spectacular's
extensions must be.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "contacts.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Api-Key"}


# Iterable's envelope, which every write and every error answers.
IterableResponse = inline_serializer(
    name="IterableApiResponse",
    fields={
        "msg": serializers.CharField(),
        "code": serializers.CharField(),
        "params": serializers.DictField(allow_null=True, required=False),
    },
)

ERRORS = {
    400: OpenApiResponse(IterableResponse, description="BadParams, BadJsonBody, ..."),
    401: OpenApiResponse(IterableResponse, description="BadApiKey"),
    403: OpenApiResponse(IterableResponse, description="Forbidden (a client-side key)"),
    413: OpenApiResponse(IterableResponse, description="The body is too large"),
    429: OpenApiResponse(IterableResponse, description="RateLimitExceeded"),
}


# An email/userId conflict: a user named by one is not the user named by the other.
CONFLICT = {
    409: OpenApiResponse(IterableResponse, description="Email/userId conflict"),
}


def envelope_responses(success_description="Success", more=None):
    """The responses of a write endpoint: Iterable's envelope, for success and
    errors (and `more`, by status code)."""
    return {
        200: OpenApiResponse(IterableResponse, description=success_description),
        **ERRORS,
        **(more or {}),
    }


class UserIdentityScheme(OpenApiSerializerExtension):
    """A user is named by email or by userId: at least one of the two is required,
    which the fields alone (both optional) do not say."""

    target_class = "contacts.api.serializers.UserIdentitySerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if direction == "request":
            schema["anyOf"] = [{"required": ["email"]}, {"required": ["userId"]}]
        return schema
