import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from contacts.services import events_dispatch_all
from journeys.services.scheduling import scheduler_tick
from journeys.services.tallies import tallies_compact_all
from journeys.services.triggers import triggers_tick
from messaging.services import retry_tick


class Command(BaseCommand):
    help = (
        "Hand due work to rq workers, forever: enrollments whose next step is due, "
        "messages whose delivery is to be tried again, and new events any dispatch job "
        "missed; every WAYMARK_TRIGGER_INTERVAL seconds, fire due schedules, dates in "
        "contacts' attributes and segment entries, and exit contacts who left a journey's "
        "audience; every WAYMARK_TALLY_COMPACT_INTERVAL seconds, compact the analytics' "
        "tallies. Claims in batches with a lease; safe to run more than one."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="Make one pass and exit (for cron or tests)."
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds to sleep when nothing was due (default: WAYMARK_SCHEDULER_INTERVAL).",
        )

    def handle(self, *args, once=False, interval=None, **options):
        interval = (
            interval if interval is not None else settings.WAYMARK_ENGINE["SCHEDULER_INTERVAL"]
        )
        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if not once:
            self.stdout.write(f"Scheduler started; polling every {interval:g}s when idle.")
        triggers_every = settings.WAYMARK_ENGINE["TRIGGER_INTERVAL"]
        triggers_at = float("-inf")
        compact_every = settings.WAYMARK_ENGINE["TALLY_COMPACT_INTERVAL"]
        compacted_at = float("-inf")
        while not self.stopping:
            close_old_connections()
            if time.monotonic() - triggers_at >= triggers_every:
                triggers_at = time.monotonic()
                if entered := triggers_tick():
                    self.stdout.write(f"Scheduled triggers entered {entered} contact(s).")
            if time.monotonic() - compacted_at >= compact_every:
                compacted_at = time.monotonic()
                tallies_compact_all()
            # New events are dispatched by a job queued when they are stored;
            # this catches any whose job Redis lost.
            events = events_dispatch_all()
            enrollments = scheduler_tick()
            retries = retry_tick()
            if enrollments:
                self.stdout.write(f"Handed {enrollments} enrollment(s) to workers.")
            if retries:
                self.stdout.write(f"Handed {retries} message(s) to retry to workers.")
            if events:
                self.stdout.write(f"Dispatched {events} event(s) to journeys.")
            handed = enrollments + retries + events
            if once:
                break
            if not handed:
                self._sleep(interval)
        if not once:
            self.stdout.write("Scheduler stopped.")

    def _stop(self, signum, frame):
        self.stopping = True

    def _sleep(self, seconds):
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, seconds))
