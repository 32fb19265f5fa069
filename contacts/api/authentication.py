from rest_framework import authentication, exceptions

from contacts.services import api_key_authenticate


class ApiKeyUser:
    """The request's user for an API key: authenticated, never staff."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, api_key):
        self.api_key = api_key
        self.pk = None

    def __str__(self):
        return f"API key {self.api_key}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Iterable's scheme: the key in an `Api-Key` header, or, as Iterable's older
    clients send it, in an `api_key` query parameter.

    Waymark never logs query strings of API requests (see
    contacts.api.middleware), so a key in the URL stays out of its logs; a
    proxy in front may still log it: prefer the header.
    """

    keyword = "Api-Key"
    query_parameter = "api_key"

    def authenticate(self, request):
        raw_key = request.headers.get(self.keyword)
        if raw_key is None:
            raw_key = request.query_params.get(self.query_parameter)
        if raw_key is None:
            return None
        api_key = api_key_authenticate(raw_key.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key")
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request):
        return self.keyword
