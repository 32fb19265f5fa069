import json

from django.core.management.base import BaseCommand, CommandError

from journeys.models import Journey
from journeys.services.exchange import journey_export


class Command(BaseCommand):
    help = (
        "Print a journey as a JSON document (docs/journey-format.md), "
        "for import_journey here or on another Waymark."
    )

    def add_arguments(self, parser):
        parser.add_argument("journey", help="The journey's name, or its id.")

    def handle(self, *args, journey, **options):
        found = Journey.objects.filter(name=journey).first()
        if found is None and journey.isdigit():
            found = Journey.objects.filter(pk=int(journey)).first()
        if found is None:
            raise CommandError(f"No journey is named or numbered {journey!r}.")
        self.stdout.write(json.dumps(journey_export(journey=found), indent=2, ensure_ascii=False))
