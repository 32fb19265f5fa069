"""Logging helpers named in settings.LOGGING."""

import logging
import re

_SECRET_PARAMETER = re.compile(r"([?&]api_key=)[^&\s\"]*", re.IGNORECASE)
# Iterable's paths name users: /api/users/{email}, /api/events/byUserId/{userId},
# .../user/{userEmail}, ?email=... A log line keeps the path's shape, not the person.
_API_PATH_EMAIL = re.compile(r"(/api/[^\s\"?]*?)[^/\s\"?]*(?:@|%40)[^/\s\"?]*", re.IGNORECASE)
_API_PATH_USER_ID = re.compile(r"(/api/[^\s\"?]*?/byUserId/)[^/\s\"?]+")
_PERSONAL_PARAMETER = re.compile(r"([?&](?:email|userId|recipientEmail)=)[^&\s\"]*")


def redact(text: str) -> str:
    text = _SECRET_PARAMETER.sub(r"\1***", text)
    text = _API_PATH_EMAIL.sub(r"\1***", text)
    text = _API_PATH_USER_ID.sub(r"\1***", text)
    return _PERSONAL_PARAMETER.sub(r"\1***", text)


class RedactSecretsFilter(logging.Filter):
    """Replace with "***", in log lines (Django's "Bad Request: <path>",
    runserver's access log): the value of an `api_key` query parameter, and
    the email address or userId an API path or query string names."""

    def filter(self, record):
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True
