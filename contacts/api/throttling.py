"""Rate limits per API key, counted in Redis.

A fixed one-minute window per key. Each process reserves requests from the
window's counter in Redis in chunks (INCRBY, with the counter's expiry set on
the window's first reservation, in one atomic script) and serves them from
memory, so a busy key costs a Redis round trip every few requests rather than
on each one. The chunk is small against the limit (at most a two-hundredth
of it, and 1 for small limits, which are then counted exactly): a key may
exceed its limit by less than a chunk per process, and requests a process
reserved but did not serve count against the key until the window ends.
Cheaper at high rates than DRF's sliding-window throttles, which store every
request's time. Limits per scope are settings (WAYMARK_API["RATE_PER_MINUTE"]);
over the limit is a 429 RateLimitExceeded.
"""

import threading
import time

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from contacts.redis import redis_client

# Requests reserved at a time, at most.
MAX_CHUNK = 20


class ApiKeyRateThrottle(BaseThrottle):
    window = 60

    def allow_request(self, request, view):
        api_key = request.auth
        limit = settings.WAYMARK_API["RATE_PER_MINUTE"].get(getattr(api_key, "scope", ""))
        if api_key is None or not limit:
            return True
        now = time.time()
        window_start = int(now) // self.window * self.window
        self._wait = window_start + self.window - now
        return _allowance.take(api_key.pk, window_start, limit, self.window)

    def wait(self):
        return max(0.0, self._wait)


class _Allowance:
    """What this process may still serve, per key, in the current window."""

    def __init__(self):
        self._lock = threading.Lock()
        self._left = {}  # (key id, window start) -> reserved, not yet served

    def take(self, key_id, window_start, limit, window) -> bool:
        slot = (key_id, window_start)
        with self._lock:
            if self._left.get(slot, 0) > 0:
                self._left[slot] -= 1
                return True
        chunk = max(1, min(MAX_CHUNK, limit // 200))
        counted = _reserve(f"waymark:api-rate:{key_id}:{window_start}", chunk, window * 2)
        # Of this chunk, what falls within the limit.
        granted = min(chunk, limit - (counted - chunk))
        if granted <= 0:
            return False
        with self._lock:
            for old in [s for s in self._left if s[1] != window_start]:
                del self._left[old]
            self._left[slot] = self._left.get(slot, 0) + granted - 1
        return True

    def clear(self):
        with self._lock:
            self._left.clear()


_allowance = _Allowance()

# Adds a reservation to the window's counter and, on the window's first, sets
# the counter's expiry: one round trip, atomic, so no counter is ever left
# without an expiry.
_RESERVE_SCRIPT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return count
"""
_scripts = {}


def _reserve(key, amount, expiry_seconds) -> int:
    client = redis_client()
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_RESERVE_SCRIPT)
    return script(keys=[key], args=[amount, expiry_seconds])
