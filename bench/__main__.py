"""Run every benchmark against a throwaway database: `python -m bench [name ...]`."""

import os
import sys
import time

import django


def main(argv):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    from bench import api, engine, ingest, sending, triggers, wakeups

    benchmarks = {
        "engine": engine.run,
        "sending": sending.run,
        "api": api.run,
        "ingest": ingest.run,
        "triggers": triggers.run,
        "wakeups": wakeups.run,
    }
    chosen = argv or list(benchmarks)
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = "waymark_bench"
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        for name in chosen:
            started = time.perf_counter()
            print(f"== {name}")
            benchmarks[name]()
            print(f"   ({time.perf_counter() - started:.1f}s in all)")
    finally:
        connection.creation.destroy_test_db("waymark_bench", verbosity=0)


if __name__ == "__main__":
    main(sys.argv[1:])
