"""Logging helpers named in settings.LOGGING."""

import logging
import re

_SECRET_PARAMETER = re.compile(r"([?&]api_key=)[^&\s\"]*", re.IGNORECASE)


class RedactSecretsFilter(logging.Filter):
    """Replace the value of an `api_key` query parameter in request lines
    (runserver's access log, say) with "***"."""

    def filter(self, record):
        if record.args:
            record.args = tuple(
                _SECRET_PARAMETER.sub(r"\1***", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_PARAMETER.sub(r"\1***", record.msg)
        return True
