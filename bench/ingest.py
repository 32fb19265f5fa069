"""Bulk ingestion over HTTP: `events/trackBulk` and `users/bulkUpdate` in batches of 1,000.

Waymark runs under gunicorn as configured for production (bench.api.serve);
BENCH_INGEST_CLIENTS clients (default 4) each post BENCH_INGEST_BATCHES
batches (default 10) of 1,000 objects, every object a new contact, over
keep-alive connections. The figure is objects committed per second of wall
time, counted in the database afterwards, and the slowest batch's time.
"""

import http.client
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from bench.api import gunicorn_shape, serve
from contacts.models import Contact, Event
from contacts.services import api_key_create

CLIENTS = int(os.environ.get("BENCH_INGEST_CLIENTS", 4))
BATCHES = int(os.environ.get("BENCH_INGEST_BATCHES", 10))
BATCH = 1000


def _events_body(client, batch):
    return {
        "events": [
            {
                "email": f"bulk-{client}-{batch}-{n}@example.com",
                "eventName": "viewed_product",
                "dataFields": {"sku": f"sku-{n % 97}", "price": n % 50 + 0.5},
            }
            for n in range(BATCH)
        ]
    }


def _users_body(client, batch):
    return {
        "users": [
            {
                "email": f"user-{client}-{batch}-{n}@example.com",
                "dataFields": {"firstName": f"Name{n}", "plan": "pro", "score": n % 10},
            }
            for n in range(BATCH)
        ]
    }


def _post_batches(port, key, path, make_body, client):
    # Bodies are made before the clock starts: the figure is Waymark's, not the client's.
    bodies = [json.dumps(make_body(client, b)).encode() for b in range(BATCHES)]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    slowest = 0.0
    for body in bodies:
        started = time.perf_counter()
        connection.request("POST", path, body, {"Api-Key": key, "Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {answer[:300]!r}")
        slowest = max(slowest, time.perf_counter() - started)
    connection.close()
    return slowest


def _measure(port, key, path, make_body, count_rows):
    before = count_rows()
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        slowest = max(
            pool.map(lambda c: _post_batches(port, key, path, make_body, c), range(CLIENTS))
        )
    elapsed = time.perf_counter() - started
    stored = count_rows() - before
    print(
        f"   {path}: {CLIENTS} clients x {BATCHES} batches of {BATCH:,}: "
        f"{stored / elapsed:,.0f} objects/s ({stored:,} committed in {elapsed:.1f}s), "
        f"slowest batch {slowest * 1000:,.0f} ms ({gunicorn_shape()})"
    )


def run():
    _, key = api_key_create(name="bench ingest")
    with serve() as port:
        _measure(port, key, "/api/events/trackBulk", _events_body, Event.objects.count)
        _measure(port, key, "/api/users/bulkUpdate", _users_body, Contact.objects.count)
