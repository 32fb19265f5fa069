"""What answers under /api/ besides the endpoints: the 404 catch-all, the schema and its docs."""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView


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
