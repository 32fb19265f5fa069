from django.apps import AppConfig


class ImportsConfig(AppConfig):
    """CSV imports into lists: above contacts and subscriptions, since an
    import writes contacts, memberships and consent."""

    name = "imports"
    verbose_name = "Imports"
