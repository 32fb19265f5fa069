from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from contacts.models import ApiKey
from contacts.services import api_key_authenticate


def test_create_api_key_prints_a_key_that_authenticates(db):
    out, err = StringIO(), StringIO()

    call_command("create_api_key", "Shop backend", stdout=out, stderr=err)

    raw_key = out.getvalue().strip()
    api_key = api_key_authenticate(raw_key)
    assert api_key is not None
    assert api_key.name == "Shop backend"
    assert "not stored" in err.getvalue()
    stored = [str(getattr(api_key, f.attname)) for f in ApiKey._meta.concrete_fields]
    assert not [value for value in stored if raw_key in value]


@pytest.mark.parametrize("name", ["", "   "])
def test_create_api_key_refuses_an_empty_name(db, name):
    with pytest.raises(CommandError, match="Give the key a name"):
        call_command("create_api_key", name)

    assert not ApiKey.objects.exists()


def test_create_api_key_refuses_a_name_too_long_to_store(db):
    with pytest.raises(CommandError, match="too long"):
        call_command("create_api_key", "x" * 201)

    assert not ApiKey.objects.exists()


def test_the_command_makes_a_client_side_key_when_asked(db):
    from io import StringIO

    from django.core.management import call_command

    from contacts.models import ApiKey

    out, err = StringIO(), StringIO()
    call_command("create_api_key", "--client", "iOS app", stdout=out, stderr=err)

    assert ApiKey.objects.get().scope == ApiKey.Scope.CLIENT
    assert "Client-side API key" in err.getvalue()
