import html

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from subscriptions.models import Channel
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    MessageTypeFactory,
    TemplateFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def preview_url(template):
    return reverse("admin:messaging_template_preview", args=[template.pk])


def srcdoc(body):
    """The iframe's srcdoc as the browser decodes it."""
    start = body.index('srcdoc="') + len('srcdoc="')
    return html.unescape(body[start : body.index('"', start)])


def test_preview_renders_for_the_sample_contact(admin_client):
    template = TemplateFactory(
        subject="Welcome, {{ contact.first_name }}!",
        html_body="<p>Hi {{ firstName }}, welcome aboard.</p>",
    )

    response = admin_client.get(preview_url(template))

    assert response.status_code == 200
    body = response.content.decode()
    assert '<td id="preview-subject">Welcome, Sam!</td>' in body
    assert "<p>Hi Sam, welcome aboard.</p>" in srcdoc(body)
    assert "sample@example.com" in body


def test_preview_shows_the_text_part_and_the_sender(admin_client, settings):
    settings.DEFAULT_FROM_EMAIL = "Waymark <hello@waymark.test>"
    template = TemplateFactory(from_name="The Team", text_body="Hi {{ firstName }}, plain.")

    body = admin_client.get(preview_url(template)).content.decode()

    assert '<pre class="preview-text" id="preview-text">Hi Sam, plain.</pre>' in body
    assert "The Team &lt;hello@waymark.test&gt;" in body


def test_preview_for_an_existing_contact_uses_their_attributes(admin_client):
    ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})
    template = TemplateFactory()

    response = admin_client.get(preview_url(template), {"email": "Ada@Example.com"})

    body = response.content.decode()
    assert '<td id="preview-subject">Welcome, Ada!</td>' in body
    assert "Sam" not in srcdoc(body)


def test_preview_for_an_unknown_email_says_so(admin_client):
    template = TemplateFactory()

    response = admin_client.get(preview_url(template), {"email": "nobody@example.com"})

    assert response.status_code == 200
    body = response.content.decode()
    assert "No contact has the email address nobody@example.com." in body
    assert "srcdoc" not in body


def test_preview_for_something_that_is_not_an_email_says_so(admin_client):
    template = TemplateFactory()

    response = admin_client.get(preview_url(template), {"email": "ada\x00@example.com"})

    assert response.status_code == 200
    assert "is not an email address." in response.content.decode()


def test_preview_passes_event_data_to_the_template(admin_client):
    template = TemplateFactory(subject="Your {{ event.plan }} plan is ready")

    response = admin_client.get(preview_url(template), {"event": '{"plan": "pro"}'})

    assert '<td id="preview-subject">Your pro plan is ready</td>' in response.content.decode()


def test_preview_with_event_data_that_is_not_json_says_so(admin_client):
    template = TemplateFactory()

    response = admin_client.get(preview_url(template), {"event": "{plan: pro}"})

    assert response.status_code == 200
    body = response.content.decode()
    assert "The event data is not valid JSON" in body
    assert "srcdoc" not in body


def test_preview_with_event_data_that_is_not_an_object_says_so(admin_client):
    template = TemplateFactory()

    response = admin_client.get(preview_url(template), {"event": "[1, 2]"})

    assert "The event data must be a JSON object" in response.content.decode()


def test_preview_of_a_template_that_fails_to_render_shows_the_error(admin_client):
    template = TemplateFactory(subject="{% if %}")

    response = admin_client.get(preview_url(template))

    assert response.status_code == 200
    body = response.content.decode()
    assert '<p class="errornote">This template cannot be rendered' in body
    assert "TemplateSyntaxError" in body
    assert "srcdoc" not in body


def test_preview_html_is_escaped_into_a_sandboxed_iframe(admin_client):
    ContactFactory(email="eve@example.com", attributes={"firstName": "<script>alert(1)</script>"})
    template = TemplateFactory(
        subject="Hi {{ firstName }}",
        html_body='<p title="x">Hi {{ firstName }}</p><script>alert(2)</script>',
        text_body="Hi {{ firstName }}",  # the text part is rendered without autoescaping
    )

    response = admin_client.get(preview_url(template), {"email": "eve@example.com"})

    body = response.content.decode()
    assert "<iframe sandbox srcdoc=" in body
    assert "<script>alert(" not in body
    assert '"x"' not in body  # quotes in the email HTML cannot end the srcdoc attribute
    assert "<script>alert(2)</script>" in srcdoc(body)  # the sandbox stops it running
    assert "&lt;script&gt;alert(1)" in srcdoc(body)  # contact data stays text


def test_preview_of_an_sms_template_shows_its_text_body(admin_client):
    sms = MessageTypeFactory(channel=ChannelFactory(name="SMS", medium=Channel.Medium.SMS))
    template = TemplateFactory(
        message_type=sms, subject="", html_body="", text_body="Hi {{ firstName }}!"
    )

    response = admin_client.get(preview_url(template))

    body = response.content.decode()
    assert "<h2>SMS message</h2>" in body
    assert '<pre class="preview-text" id="preview-text">Hi Sam!</pre>' in body
    assert "srcdoc" not in body


def test_preview_is_forbidden_to_staff_who_cannot_view_templates(client):
    template = TemplateFactory()
    client.force_login(UserFactory())

    response = client.get(preview_url(template))

    assert response.status_code == 403


def test_preview_is_open_to_staff_who_can_view_templates(client):
    template = TemplateFactory()
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="view_template"))
    client.force_login(user)

    response = client.get(preview_url(template))

    assert response.status_code == 200


def test_change_page_links_to_the_preview(admin_client):
    template = TemplateFactory()

    response = admin_client.get(reverse("admin:messaging_template_change", args=[template.pk]))

    assert f'<a href="{preview_url(template)}">Preview</a>' in response.content.decode()


def test_preview_queries(admin_client, django_assert_num_queries):
    template = TemplateFactory()
    ContactFactory(email="ada@example.com")
    url = preview_url(template)

    # session, user, template with its channel
    with django_assert_num_queries(3):
        assert admin_client.get(url).status_code == 200
    # and the contact
    with django_assert_num_queries(4):
        assert admin_client.get(url, {"email": "ada@example.com"}).status_code == 200
