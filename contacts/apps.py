from django.apps import AppConfig


class ContactsConfig(AppConfig):
    name = "contacts"
    verbose_name = "Contacts"

    def ready(self):
        from django.db.backends.signals import connection_created

        from contacts import timeline  # noqa: F401  (puts events on the contact page)
        from contacts.api import schema  # noqa: F401  (registers the API key scheme)
        from contacts.conditions.attributes import sqlite_register

        connection_created.connect(sqlite_register, dispatch_uid="contacts.conditions.sqlite")
