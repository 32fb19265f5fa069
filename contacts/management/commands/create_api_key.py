from django.core.management.base import BaseCommand, CommandError

from contacts.models import ApiKey
from contacts.services import api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for an integrator and print it. The key is shown only "
        "this once: Waymark stores its hash, not the key."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="What the key is for, e.g. “Shop backend”.")

    def handle(self, *args, name, **options):
        name = name.strip()
        if not name:
            raise CommandError('Give the key a name, e.g. create_api_key "Shop backend".')
        max_length = ApiKey._meta.get_field("name").max_length
        if len(name) > max_length:
            raise CommandError(f"The name is too long: at most {max_length} characters.")
        _, raw_key = api_key_create(name=name)
        # The key alone on stdout, so that scripts can capture it; the note
        # for people on stderr.
        self.stdout.write(raw_key)
        self.stderr.write(
            f"API key “{name}” created. Copy it now: it is not stored and cannot be shown again."
        )
