from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self):
        from messaging import (
            conditions,  # noqa: F401  (adds the "message" leaf to the condition language)
            receivers,  # noqa: F401  (connects signal receivers)
            timeline,  # noqa: F401  (adds messages and engagement to the contact page)
        )
