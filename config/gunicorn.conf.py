"""gunicorn settings for Waymark's web processes: `gunicorn -c config/gunicorn.conf.py config.wsgi`.

Threaded workers, one per core plus one, keep client connections open between
requests (the sync worker closes each one, so API clients pay a new TCP
connection per call) and let a worker serve another request while one waits
on PostgreSQL or Redis. On two cores, three workers of four threads served
events/track fastest and with the shortest tail (docs/performance.md).
Every value can be overridden on the command line or through gunicorn's own
environment variables (WEB_CONCURRENCY, GUNICORN_CMD_ARGS).
"""

import multiprocessing
import os

bind = os.environ.get("WAYMARK_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() + 1))
worker_class = os.environ.get("WAYMARK_WORKER_CLASS", "gthread")
threads = int(os.environ.get("WAYMARK_WEB_THREADS", 4))
# The application (settings, models, views) is loaded once, before the workers
# fork: they share its memory and none pays for the imports on its first request.
preload_app = True
# Idle keep-alive connections are held this many seconds.
keepalive = 5
# A request that takes longer than this is a bug or an attack: the worker is restarted.
timeout = 60
graceful_timeout = 30
# Recycle workers now and then so a slow leak cannot grow without bound.
max_requests = 20_000
max_requests_jitter = 2_000
accesslog = None  # the reverse proxy logs requests; query strings can carry an api_key
errorlog = "-"
