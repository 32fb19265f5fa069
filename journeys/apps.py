from django.apps import AppConfig


class JourneysConfig(AppConfig):
    name = "journeys"
    verbose_name = "Journeys"

    def ready(self):
        from journeys import (
            conditions,  # noqa: F401  (lets message conditions name a journey)
            receivers,  # noqa: F401  (connects signal receivers)
            timeline,  # noqa: F401  (adds journey passages to the contact page)
        )
