"""Help beside the template editor: the variables a template can use, read
from the code that builds every message's context."""

import html

import pytest
from django.urls import reverse

from messaging.context import VARIABLE_MEANINGS, message_context, template_variable_reference
from tests.factories import ContactFactory, TemplateFactory

pytestmark = pytest.mark.django_db

ATTRIBUTES = {"plan": "pro", "firstName": "Ann"}


def reference_names():
    return [name for name, _ in template_variable_reference()]


def test_every_name_a_template_sees_is_in_the_reference():
    contact = ContactFactory(attributes=ATTRIBUTES)
    context = message_context(contact=contact, event={"cartId": "c-1"})
    names = set(reference_names())

    for key, value in context.items():
        if key in ATTRIBUTES:
            assert "<attribute>" in names
        elif key == "contact":
            fields = {f"contact.{field}" for field in value if field not in ATTRIBUTES}
            assert fields <= names
            assert "contact.<attribute>" in names
        elif key == "event":
            assert "event.<field>" in names
        elif isinstance(value, dict):
            assert {f"{key}.{sub}" for sub in value} <= names
        else:
            assert key in names


def test_every_name_in_the_reference_says_what_it_is():
    reference = template_variable_reference()

    assert [name for name, meaning in reference if not meaning] == []
    # No meaning is kept for a name the context no longer offers.
    assert set(VARIABLE_MEANINGS) == {name for name, _ in reference}


def test_the_template_editor_shows_each_variable_with_its_meaning(admin_client):
    template = TemplateFactory()

    body = admin_client.get(reverse("admin:messaging_template_change", args=[template.pk]))
    body = body.content.decode()
    reference = body[body.index('id="variable-reference"') :]
    reference = reference[: reference.index("</details>")]

    for name, meaning in template_variable_reference():
        row = f"<td><code>{{{{ {html.escape(name)} }}}}</code></td><td>{html.escape(meaning)}</td>"
        assert row in reference


def test_the_admin_header_has_no_view_site_link_to_a_missing_page(admin_client):
    body = admin_client.get(reverse("admin:index")).content.decode()

    assert "View site" not in body
    assert 'href="/"' not in body
