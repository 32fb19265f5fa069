"""Guards: every medium has a backend, and every backend keeps the contract."""

import inspect

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from messaging.backends import email, get_backend, inapp, push, reset_backends, sms, webhook
from messaging.backends import webpush as web_push
from messaging.backends.base import Backend
from subscriptions.models import Channel

# Every backend class Waymark ships: the defaults and their alternatives.
SHIPPED = [
    cls
    for module in (email, sms, push, web_push, inapp, webhook)
    for _, cls in inspect.getmembers(module, inspect.isclass)
    if issubclass(cls, Backend)
    and cls.__module__ == module.__name__
    and cls.__name__.endswith("Backend")
    and cls.medium
]


def test_every_medium_has_a_backend_for_that_medium():
    configured = settings.WAYMARK_BACKENDS

    assert set(configured) == set(Channel.Medium.values)
    for medium, path in configured.items():
        assert import_string(path).medium == medium, path


def test_the_registry_hands_out_one_instance_per_medium():
    reset_backends()
    try:
        for medium in Channel.Medium.values:
            assert get_backend(medium) is get_backend(medium)
            assert isinstance(get_backend(medium), Backend)
    finally:
        reset_backends()


def test_there_is_an_alternative_of_each_kind_shipped():
    names = {cls.__name__ for cls in SHIPPED}

    assert {
        "EmailBackend",
        "TwilioSmsBackend",
        "SmsOutboxBackend",
        "TwilioWhatsAppBackend",
        "WhatsAppOutboxBackend",
        "FcmBackend",
        "PushOutboxBackend",
        "WebPushBackend",
        "WebPushOutboxBackend",
        "InAppBackend",
        "WebhookBackend",
    } <= names


@pytest.mark.parametrize("backend_class", SHIPPED, ids=lambda cls: cls.__name__)
def test_every_backend_implements_the_contract(backend_class):
    assert issubclass(backend_class, Backend)
    for method in ("address_for", "render", "deliver"):
        assert getattr(backend_class, method) is not getattr(Backend, method), (
            f"{backend_class.__name__} does not implement {method}"
        )
    assert backend_class.medium in Channel.Medium.values
    assert set(backend_class.template_fields) <= {
        "subject",
        "preheader",
        "html_body",
        "text_body",
        "title",
        "link_url",
        "http_method",
    }
