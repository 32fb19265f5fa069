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
    # WAYMARK_BENCH_KEEP=1 keeps the database for the next run (which reuses
    # it): the admin pages' seed of 10,000,000 messages takes many minutes.
    keep = bool(os.environ.get("WAYMARK_BENCH_KEEP"))
    connection.creation.create_test_db(
        verbosity=0, autoclobber=not keep, keepdb=keep, serialize=False
    )
    tallies = not os.environ.get("WAYMARK_BENCH_NO_TALLIES")
    if tallies:
        _track_trigger_time(bench_name)
    else:
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
            if tallies:
                _print_trigger_time()
    finally:
        if not keep:
            connection.creation.destroy_test_db(bench_name, verbosity=0)


def _track_trigger_time(database):
    """Have PostgreSQL time its functions (the tally triggers) in every
    connection made from now on: the workers'."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER DATABASE {connection.ops.quote_name(database)} SET track_functions = 'pl'"
        )
        cursor.execute("SELECT pg_stat_reset()")


def _print_trigger_time():
    """Time spent in the tally triggers by every connection that has ended
    (the workers, once stopped), and how often they ran."""
    from django.db import connection

    time.sleep(1.5)  # backends report their statistics within a second of ending
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT funcname, calls, total_time FROM pg_stat_user_functions "
            "WHERE funcname LIKE '%%tally%%' ORDER BY funcname"
        )
        rows = cursor.fetchall()
        cursor.execute("SELECT pg_stat_reset()")
    total = sum(row[2] for row in rows)
    print(f"   time in the tally triggers: {total:,.0f} ms in all")
    for name, calls, ms in rows:
        print(f"      {name}: {calls:,} calls, {ms:,.0f} ms")


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
