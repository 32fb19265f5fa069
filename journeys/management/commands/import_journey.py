import json
import sys

from django.core.management.base import BaseCommand, CommandError

from journeys.services.exchange import JourneyImportError, journey_import


class Command(BaseCommand):
    help = (
        "Create the journey a JSON document describes (docs/journey-format.md), as a draft. "
        "Nothing is written if anything in it is wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The document, as export_journey wrote it ('-': stdin).")
        parser.add_argument("--name", help="Import under this name instead of the document's.")

    def handle(self, *args, file, name=None, **options):
        try:
            if file == "-":
                document = json.load(sys.stdin)
            else:
                with open(file, encoding="utf-8") as handle:
                    document = json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from None
        except ValueError as exc:
            raise CommandError(f"{file} is not JSON: {exc}") from None
        try:
            journey = journey_import(document=document, name=name)
        except JourneyImportError as exc:
            raise CommandError(str(exc)) from None
        steps = journey.steps.count()
        self.stdout.write(
            f"Imported “{journey}” (id {journey.pk}) as a draft, with {steps} step(s)."
        )
