"""JSON bodies parsed strictly: what cannot be stored is refused before any write.

Python's json module accepts things PostgreSQL cannot store or that make no
sense in data: NaN and Infinity (also as 1e400), NUL characters and lone
UTF-16 surrogates in strings (valid JSON escapes, invalid text), and nesting
deep enough to exhaust the stack. Each is a 400 `BadJsonBody` here, naming
where it is.
"""

import json
import math

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


class _Refused(ValueError):
    pass


def _constant(name):
    raise _Refused(f"{name} is not a number JSON data may hold")


def _float(text):
    value = float(text)
    if math.isinf(value):
        raise _Refused(f"{text} is too large a number")
    return value


def _where(path):
    # The path names keys as sent: a lone surrogate in one is escaped so the
    # error message itself can be encoded.
    return path.encode("utf-8", "backslashreplace").decode("utf-8") if path else "the body"


def _check_text(text, path):
    if "\x00" in text:
        raise _Refused(f"{_where(path)}: text may not contain NUL (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refused(f"{_where(path)}: text contains a lone surrogate escape") from None


def check_storable(value, path="", depth=0):
    """Raise _Refused unless `value` (parsed JSON) can be stored as it is."""
    if depth > MAX_DEPTH:
        raise _Refused(f"{path}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{path}.{key}" if path else key)
            check_storable(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_storable(item, f"{path}[{index}]", depth + 1)


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", "utf-8")
        limit = settings.WAYMARK_API["MAX_BODY_BYTES"]
        # Read at most one byte past the limit, whatever Content-Length says.
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit:,} bytes.")
        try:
            text = body.decode(encoding)
            data = json.loads(text, parse_constant=_constant, parse_float=_float)
            check_storable(data)
        except RecursionError:
            raise ParseError(f"JSON nested too deeply (at most {MAX_DEPTH} levels).") from None
        except _Refused as exc:
            raise ParseError(str(exc)) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        return data
