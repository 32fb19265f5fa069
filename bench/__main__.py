"""Run every benchmark against a throwaway database:
`python -m bench [name ...] [--option ...]`.

Options (anything from the first argument starting with "--") go to the
benchmarks that take them (engine: see bench/engine.py).
"""

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

    from bench import admin_pages, api, engine, imports, ingest, sending, triggers, wakeups

    benchmarks = {
        "engine": engine.run,
        "sending": sending.run,
        "api": api.run,
        "ingest": ingest.run,
        "triggers": triggers.run,
        "wakeups": wakeups.run,
        "imports": imports.run,
        "admin_pages": admin_pages.run,
    }
    first_option = next((i for i, arg in enumerate(argv) if arg.startswith("--")), len(argv))
    argv, options = argv[:first_option], argv[first_option:]
    chosen = argv or list(benchmarks)
    # Next to the configured database, so two checkouts can run benchmarks at once.
    bench_name = f"{settings.DATABASES['default']['NAME']}_bench"
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = bench_name
    setup_test_environment()
    # WAYMARK_BENCH_KEEP=1 keeps the database for the next run (which reuses
    # it): the admin pages' seed of 10,000,000 messages takes many minutes.
    keep = bool(os.environ.get("WAYMARK_BENCH_KEEP"))
    connection.creation.create_test_db(
        verbosity=0, autoclobber=not keep, keepdb=keep, serialize=False
    )
    try:
        for name in chosen:
            started = time.perf_counter()
            print(f"== {name}")
            if name == "engine":
                benchmarks[name](options)
            else:
                benchmarks[name]()
            print(f"   ({time.perf_counter() - started:.1f}s in all)")
    finally:
        if not keep:
            connection.creation.destroy_test_db(bench_name, verbosity=0)


if __name__ == "__main__":
    main(sys.argv[1:])
