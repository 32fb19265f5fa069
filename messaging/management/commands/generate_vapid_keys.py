"""Make a VAPID key pair for web push and print it as environment lines."""

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management.base import BaseCommand, CommandError


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Command(BaseCommand):
    help = (
        "Make a VAPID key pair for web push and print VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY "
        "and VAPID_SUBJECT lines for your environment (.env). Browsers subscribe with the "
        "public key; once they have, changing the keys makes their subscriptions useless."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--subject",
            default="mailto:ops@example.com",
            help="Who push services may contact about these messages: a mailto: or https: URL.",
        )

    def handle(self, *args, subject, **options):
        if not subject.startswith(("mailto:", "https://")):
            raise CommandError("The subject must be a mailto: or https:// URL.")
        key = ec.generate_private_key(ec.SECP256R1())
        private = key.private_numbers().private_value.to_bytes(32, "big")
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.stdout.write(f"VAPID_PUBLIC_KEY={_b64url(public)}")
        self.stdout.write(f"VAPID_PRIVATE_KEY={_b64url(private)}")
        self.stdout.write(f"VAPID_SUBJECT={subject}")
