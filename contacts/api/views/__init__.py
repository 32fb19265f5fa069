"""The contacts app's API views, one module per group of Iterable's endpoints."""

from contacts.api.views.events import TrackEventView
from contacts.api.views.meta import ApiDocsView, ApiSchemaView, NotFoundView

__all__ = ["ApiDocsView", "ApiSchemaView", "NotFoundView", "TrackEventView"]
