"""Rate limits per API key, counted in Redis (Django's cache).

A fixed one-minute window per key, counted with one atomic INCR per
request: cheaper at high rates than DRF's sliding-window throttles, which
store every request's time. Limits per scope are settings
(WAYMARK_API["RATE_PER_MINUTE"]); over the limit is a 429 RateLimitExceeded.
"""

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle


class ApiKeyRateThrottle(BaseThrottle):
    window = 60

    def allow_request(self, request, view):
        api_key = request.auth
        limit = settings.WAYMARK_API["RATE_PER_MINUTE"].get(getattr(api_key, "scope", ""))
        if api_key is None or not limit:
            return True
        window_start = int(time.time()) // self.window * self.window
        key = f"waymark:api-rate:{api_key.pk}:{window_start}"
        # add() only sets a missing key, with the window's lifetime; incr() is atomic.
        cache.add(key, 0, timeout=self.window * 2)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=self.window * 2)
            count = 1
        self._wait = window_start + self.window - time.time()
        return count <= limit

    def wait(self):
        return max(0.0, self._wait)
