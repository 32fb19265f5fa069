"""The API answers in Iterable's JSON envelope, whatever goes wrong.

DRF turns the errors it knows into the envelope (contacts.api.errors); this
middleware catches what reaches Django instead (an unexpected exception, a
body Django itself refuses) for paths under /api/. It logs the exception's
type and the path only: an exception's text can carry the request's data
(a duplicate key's value, say), and personal data stays out of logs.
"""

import logging

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import JsonResponse

logger = logging.getLogger("waymark.api")


def _envelope(msg, code, status):
    return JsonResponse({"msg": msg, "code": code, "params": None}, status=status)


class ApiErrorMiddleware:
    prefix = "/api/"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not request.path.startswith(self.prefix):
            return None
        if isinstance(exception, RequestDataTooBig):
            return _envelope("The request body is too large.", "GenericError", 413)
        if isinstance(exception, SuspiciousOperation):
            return _envelope("The request was refused as malformed.", "BadParams", 400)
        logger.error(
            "API error %s on %s %s", type(exception).__name__, request.method, request.path
        )
        return _envelope("Something went wrong on our side; nothing was changed.",
                         "GenericError", 500)  # fmt: skip
