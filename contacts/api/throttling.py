"""Rate limits per API key, counted in Redis.

A fixed one-minute window per key, counted with one round trip per request
(SET NX with an expiry, then INCR): cheaper at high rates than DRF's
sliding-window throttles, which store every request's time. Limits per
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
        pipe = redis_client().pipeline(transaction=False)
        pipe.set(key, 0, nx=True, ex=self.window * 2)  # the window's counter, once
        pipe.incr(key)
        _, count = pipe.execute()
        self._wait = window_start + self.window - time.time()
        return count <= limit

    def wait(self):
        return max(0.0, self._wait)
