"""Users: POST /api/users/forget (GDPR erasure)."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.views import APIView

from contacts.api.errors import IterableError, iterable_response
from contacts.api.schema import envelope_responses
from contacts.api.serializers import UserIdentitySerializer
from contacts.services import contact_find
from contacts.services.forget import addresses_forget, contact_forget


class ForgetRequestSerializer(UserIdentitySerializer):
    """Iterable's UserRequest: the user to forget, by email or userId."""


@extend_schema_view(
    post=extend_schema(
        operation_id="forget",
        summary="Forget a user in compliance with GDPR",
        description=(
            "Erases the user's personal data (profile, events, devices, consent records; "
            "messages are kept for metrics without address or content) and refuses every "
            "later send to the user's email address and phone number, even if the same "
            "address comes back. An email address no user has is recorded as forgotten too."
        ),
        request=ForgetRequestSerializer,
        responses=envelope_responses("The user is forgotten."),
        tags=["Users"],
    )
)
class ForgetUserView(APIView):
    """POST /api/users/forget — erase a user and never contact their addresses again."""

    def post(self, request):
        serializer = ForgetRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email, user_id = (
            serializer.validated_data.get("email"),
            serializer.validated_data.get("userId"),
        )
        requested_by = f"API key “{request.auth.name}”"
        contact = contact_find(email=email, user_id=user_id)
        if contact is not None:
            contact_forget(contact=contact, actor=requested_by, source="api")
        elif email:
            # Iterable adds the address to its forgotten list whether or not a
            # user has it: it is not collected or contacted from now on.
            addresses_forget(email=email, source="api", requested_by=requested_by)
        else:
            raise IterableError("No user with that userId.", "BadParams")
        return iterable_response("The user is forgotten.")
