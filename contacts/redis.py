"""One Redis client per process, for rq queues and counters.

django_rq.get_queue() builds a new client (and connection pool) on every
call, and Django's Redis cache a new client on every operation; on paths
that run for every API request that cost shows. Redis holds only work in
flight and short-lived counters: the database stays the source of truth.
"""

import functools

import django_rq
import redis
from django.conf import settings


@functools.cache
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def default_queue():
    """The `default` rq queue, on this process's Redis client."""
    return django_rq.get_queue("default", connection=redis_client())
