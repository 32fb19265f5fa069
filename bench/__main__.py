"""Run every benchmark against a throwaway database:
`python -m bench [name ...] [--option ...]`.

Options (anything from the first argument starting with "--") go to the
benchmarks that take them (engine: see bench/engine.py).

WAYMARK_BENCH_NO_TALLIES=1 drops the tally triggers (docs/analytics.md) from
the throwaway database first: the same code without them, to measure what
they cost on a hot path.
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

    from bench import (
        admin_pages,
        analytics,
        api,
        engine,
        imports,
        ingest,
        sending,
        triggers,
        wakeups,
    )

    benchmarks = {
        "engine": engine.run,
        "sending": sending.run,
        "api": api.run,
        "ingest": ingest.run,
        "triggers": triggers.run,
        "wakeups": wakeups.run,
        "imports": imports.run,
        "admin_pages": admin_pages.run,
        "analytics": analytics.run,
    }
    first_option = next((i for i, arg in enumerate(argv) if arg.startswith("--")), len(argv))
    argv, options = argv[:first_option], argv[first_option:]
    chosen = argv or list(benchmarks)
    # Next to the configured database, so two checkouts can run benchmarks at once.
    bench_name = f"{settings.DATABASES['default']['NAME']}_bench"
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = bench_name
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    if os.environ.get("WAYMARK_BENCH_NO_TALLIES"):
        _drop_tally_triggers()
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
        connection.creation.destroy_test_db(bench_name, verbosity=0)


def _drop_tally_triggers():
    from django.db import connection

    from contacts.tallies import drop_triggers
    from journeys import tallies as journey_tallies
    from messaging import tallies as message_tallies

    with connection.cursor() as cursor:
        for sql in drop_triggers(
            connection.vendor, [*journey_tallies.TRIGGERS, *message_tallies.TRIGGERS]
        ):
            cursor.execute(sql)
    print("   (tally triggers dropped: WAYMARK_BENCH_NO_TALLIES)")


if __name__ == "__main__":
    main(sys.argv[1:])
