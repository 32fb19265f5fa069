from django.core.management.base import BaseCommand

from journeys.services.tallies import tallies_compact_all


class Command(BaseCommand):
    help = (
        "Fold the journey and message tallies' delta rows into one row per key, day and "
        "metric (the scheduler does it every WAYMARK_TALLY_COMPACT_INTERVAL seconds). Safe "
        "while contacts move and messages are sent, and alongside a scheduler."
    )

    def handle(self, *args, **options):
        done = tallies_compact_all()
        for name, folded in (("journey", done.journeys), ("message", done.messages)):
            if folded is None:
                self.stdout.write(f"The {name} tallies are being compacted by another process.")
            else:
                self.stdout.write(f"Folded {folded} delta row(s) of the {name} tallies.")
