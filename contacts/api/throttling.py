"""Rate limits per API key, counted in Redis.

A fixed one-minute window per key, counted with one round trip per request
(a script that increments the window's counter and sets its expiry once):
cheaper at high rates than DRF's sliding-window throttles, which store every
request's time. Limits per
scope are settings (WAYMARK_API["RATE_PER_MINUTE"]); over the limit is a 429
RateLimitExceeded.
"""

import time

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from contacts.redis import redis_client


class ApiKeyRateThrottle(BaseThrottle):
    window = 60

    def allow_request(self, request, view):
        api_key = request.auth
        limit = settings.WAYMARK_API["RATE_PER_MINUTE"].get(getattr(api_key, "scope", ""))
        if api_key is None or not limit:
            return True
        window_start = int(time.time()) // self.window * self.window
        key = f"waymark:api-rate:{api_key.pk}:{window_start}"
        count = _count(key, self.window * 2)
        self._wait = window_start + self.window - time.time()
        return count <= limit

    def wait(self):
        return max(0.0, self._wait)


# Counts a request and, on the window's first, sets the counter's expiry: one
# round trip, atomic, so no counter is ever left without an expiry.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
_scripts = {}


def _count(key, expiry_seconds) -> int:
    client = redis_client()
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_COUNT_SCRIPT)
    return script(keys=[key], args=[expiry_seconds])
