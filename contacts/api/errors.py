"""Iterable's response envelope: {"msg", "code", "params"} with its codes."""

from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, status
from rest_framework.response import Response


def iterable_response(msg, code="Success", params=None, http_status=status.HTTP_200_OK):
    return Response({"msg": msg, "code": code, "params": params}, status=http_status)


class IterableError(exceptions.APIException):
    """An error with an Iterable code, raised from views and services' callers."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, msg, code="BadParams", params=None, http_status=None):
        super().__init__(msg)
        self.iterable_code = code
        self.params = params
        if http_status:
            self.status_code = http_status


def _first_message(detail):
    if isinstance(detail, dict):
        for field, value in detail.items():
            return (
                f"{field}: {_first_message(value)}"
                if field != "non_field_errors"
                else _first_message(value)
            )
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def iterable_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return iterable_response("The request body is too large.", "GenericError", None, 413)
    if isinstance(exc, IterableError):
        return iterable_response(str(exc.detail), exc.iterable_code, exc.params, exc.status_code)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response = iterable_response(
            "Invalid API key", "BadApiKey", None, status.HTTP_401_UNAUTHORIZED
        )
        response["WWW-Authenticate"] = "Api-Key"
        return response
    if isinstance(exc, exceptions.PermissionDenied):
        return iterable_response(str(exc.detail), "Forbidden", None, status.HTTP_403_FORBIDDEN)
    if isinstance(exc, exceptions.ParseError):
        return iterable_response(
            f"Could not parse the JSON body: {exc.detail}", "BadJsonBody", None, 400
        )
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return iterable_response(
            "Send the body as JSON (Content-Type: application/json).", "BadJsonBody", None, 400
        )
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        code = "BadParams"
        if isinstance(detail, dict) and "email" in detail:
            code = "InvalidEmailAddressError"
        return iterable_response(
            _first_message(detail), code, {"errors": detail}, status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, exceptions.NotFound):
        return iterable_response(str(exc.detail), "NotFound", None, status.HTTP_404_NOT_FOUND)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return iterable_response(str(exc.detail), "GenericError", None, exc.status_code)
    if isinstance(exc, exceptions.Throttled):
        response = iterable_response(
            "Too many requests for this API key; try again shortly.",
            "RateLimitExceeded",
            None,
            exc.status_code,
        )
        if exc.wait is not None:
            response["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        return response
    if isinstance(exc, exceptions.APIException):
        return iterable_response(str(exc.detail), "GenericError", None, exc.status_code)
    return None


def check_batch_size(items, *, field: str):
    """Raise BatchTooLarge (400) for a bulk request with more than
    WAYMARK_API["MAX_BATCH"] items, before anything is written."""
    from django.conf import settings

    limit = settings.WAYMARK_API["MAX_BATCH"]
    if len(items) > limit:
        raise IterableError(
            f"{field} holds {len(items):,} items; at most {limit:,} are taken per request.",
            "BatchTooLarge",
            {"limit": limit, "received": len(items)},
        )
