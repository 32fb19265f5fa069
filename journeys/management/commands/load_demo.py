from django.core.management.base import BaseCommand

from journeys.demo import DEMO_ADMIN_PASSWORD, DEMO_ADMIN_USERNAME, demo_workspace_load


class Command(BaseCommand):
    help = (
        "Create the demo workspace (admin user, channels, message types, templates, contacts, "
        'the live "Welcome series" journey and an API key) where it is missing. Safe to run '
        "again: nothing that exists is changed."
    )

    def handle(self, *args, **options):
        result = demo_workspace_load()
        self.stdout.write(demo_summary(result))
        if result.admin_created:
            self.stdout.write(
                f"Log in as {DEMO_ADMIN_USERNAME} / {DEMO_ADMIN_PASSWORD} (a local demo password)."
            )
        else:
            self.stdout.write(
                f"Superuser {DEMO_ADMIN_USERNAME} exists already; its password was left as it is."
            )
        if result.api_key_raw:
            self.stdout.write(
                "API key (shown once: only its hash is stored):\n"
                f"  export WAYMARK_API_KEY={result.api_key_raw}"
            )
        else:
            self.stdout.write(
                'The "Demo key" API key was made by an earlier load and cannot be shown again; '
                "make a new one with: python manage.py create_api_key NAME"
            )


def demo_summary(result) -> str:
    if result.created:
        return "Demo workspace: created " + ", ".join(result.created) + "."
    return "Demo workspace: already loaded; nothing changed."
