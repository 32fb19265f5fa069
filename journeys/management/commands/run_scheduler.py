import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from journeys.services.scheduling import scheduler_tick


class Command(BaseCommand):
    help = (
        "Hand due journey work to rq workers, forever. Claims due enrollments in "
        "batches with a lease; safe to run more than one."
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
        while not self.stopping:
            close_old_connections()
            handed = scheduler_tick()
            if handed:
                self.stdout.write(f"Handed {handed} enrollment(s) to workers.")
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
