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
        parser.add_argument(
            "--client",
            action="store_true",
            help="A client-side key, for apps and web pages: it may only track events, "
            "update a user and register devices.",
        )

    def handle(self, *args, name, client=False, **options):
        name = name.strip()
        if not name:
            raise CommandError('Give the key a name, e.g. create_api_key "Shop backend".')
        max_length = ApiKey._meta.get_field("name").max_length
        if len(name) > max_length:
            raise CommandError(f"The name is too long: at most {max_length} characters.")
        scope = ApiKey.Scope.CLIENT if client else ApiKey.Scope.SERVER
        _, raw_key = api_key_create(name=name, scope=scope)
        # The key alone on stdout, so that scripts can capture it; the note
        # for people on stderr.
        self.stdout.write(raw_key)
        self.stderr.write(
            f"{ApiKey.Scope(scope).label.split(':')[0]} API key “{name}” created. "
            "Copy it now: it is not stored and cannot be shown again."
        )
