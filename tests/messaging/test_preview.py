import html
import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from messaging.models import Message
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


def staff_with(client, *codenames):
    user = UserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def page_text(response):
    """The page, without the CSRF token of the logout form (new on every response)."""
    assert response.status_code == 200
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.content.decode())


def test_staff_who_cannot_view_contacts_preview_with_the_sample_contact_only(client):
    ContactFactory(email="ada@example.com", attributes={"firstName": "Ada", "plan": "enterprise"})
    template = TemplateFactory(subject="Hi {{ firstName }}, {{ plan|default:'no plan' }}")
    staff_with(client, "view_template")

    body = page_text(client.get(preview_url(template), {"email": "ada@example.com"}))

    assert '<td id="preview-subject">Hi Sam, no plan</td>' in body
    assert "enterprise" not in body
    assert "Ada" not in body
    assert "Previewing a contact of your own choice needs permission to view contacts" in body
    assert 'name="email"' not in body


def test_the_preview_does_not_tell_staff_who_cannot_view_contacts_whether_an_address_is_known(
    client,
):
    ada = ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})
    template = TemplateFactory()
    staff_with(client, "view_template")

    known = page_text(client.get(preview_url(template), {"email": "ada@example.com"}))
    ada.delete()
    unknown = page_text(client.get(preview_url(template), {"email": "ada@example.com"}))
    no_email = page_text(client.get(preview_url(template)))

    assert known == unknown == no_email


def test_staff_who_can_view_contacts_preview_a_contact_of_their_choice(client):
    ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})
    template = TemplateFactory(subject="Hi {{ firstName }}")
    staff_with(client, "view_template", "view_contact")

    body = page_text(client.get(preview_url(template), {"email": "ada@example.com"}))

    assert '<td id="preview-subject">Hi Ada</td>' in body
    assert 'name="email"' in body


def test_preview_queries_for_staff_who_cannot_view_contacts(client, django_assert_num_queries):
    template = TemplateFactory()
    ContactFactory(email="ada@example.com")
    staff_with(client, "view_template")
    url = preview_url(template)

    # session, user, template with its channel, the user's and their groups' permissions;
    # no contact is looked up, whatever the address
    with django_assert_num_queries(5):
        assert client.get(url, {"email": "ada@example.com"}).status_code == 200


def test_preview_lists_the_variables_and_those_the_contact_and_event_lack(admin_client):
    ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})
    template = TemplateFactory(
        subject="Hi {{ firstName }}",
        preheader="Your {{ event.plan }} plan",
        html_body='<p>{{ contact.last_name }}</p><a href="{{ links.unsubscribe }}">Unsubscribe</a>',
        text_body="{% for item in event.items %}{{ item.name }}{% endfor %}",
    )

    body = page_text(
        admin_client.get(preview_url(template), {"email": "ada@example.com", "event": "{}"})
    )

    used = re.search(r'<ul id="preview-variables"[^>]*>(.*?)</ul>', body, re.S).group(1)
    assert re.findall(r"<code>(.*?)</code>", used) == [
        "firstName",
        "event.plan",
        "contact.last_name",
        "links.unsubscribe",
        "event.items",
    ]
    lacking = re.search(r'<ul id="preview-missing"[^>]*>(.*?)</ul>', body, re.S).group(1)
    assert re.findall(r"<code>(.*?)</code>", lacking) == [
        "event.plan",
        "contact.last_name",
        "event.items",
    ]
    assert "render blank" in body


def test_preview_says_when_the_contact_has_every_variable(admin_client):
    template = TemplateFactory(
        subject="Hi {{ firstName }}", html_body="<p>{{ unsubscribeUrl }}</p>"
    )

    body = page_text(admin_client.get(preview_url(template)))

    assert 'id="preview-missing"' not in body
    assert "The sample contact and the event data have them all." in body


def test_preview_shows_the_preheader_escaped(admin_client):
    ContactFactory(email="eve@example.com", attributes={"firstName": "<b>Eve</b>"})
    template = TemplateFactory(preheader="Hello {{ firstName }} & co")

    body = page_text(admin_client.get(preview_url(template), {"email": "eve@example.com"}))

    assert '<td id="preview-preheader">Hello &lt;b&gt;Eve&lt;/b&gt; &amp; co</td>' in body


# --- sending a test from the preview ----------------------------------------------------


def send_test_url(template):
    return reverse("admin:messaging_template_send_test", args=[template.pk])


@pytest.mark.django_db(transaction=True)
def test_a_test_send_arrives_marked_as_a_test(admin_client, smtp_server):
    ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})
    template = TemplateFactory(subject="Hi {{ firstName }}, your {{ event.plan }} plan")

    response = admin_client.post(
        send_test_url(template),
        {"to": "me@acme.test", "email": "ada@example.com", "event": '{"plan": "pro"}'},
    )

    assert response.status_code == 302
    assert response["Location"] == (
        preview_url(template) + "?email=ada%40example.com&event=%7B%22plan%22%3A+%22pro%22%7D"
    )
    (email,) = smtp_server.messages
    assert email["To"] == "me@acme.test"
    assert email["Subject"] == "[Test] Hi Ada, your pro plan"
    message = Message.objects.get()
    assert (message.is_test, message.origin, message.status) == (True, "test", "sent")
    page = admin_client.get(response["Location"]).content.decode()
    assert "A test of “" in page and "was sent to me@acme.test." in page


@pytest.mark.django_db(transaction=True)
def test_a_test_send_for_staff_who_cannot_view_contacts_uses_the_sample_contact(
    client, smtp_server
):
    ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})
    template = TemplateFactory(subject="Hi {{ firstName }}")
    staff_with(client, "view_template", "change_template")

    response = client.post(
        send_test_url(template), {"to": "me@acme.test", "email": "ada@example.com"}
    )

    assert response.status_code == 302
    assert [m["Subject"] for m in smtp_server.messages] == ["[Test] Hi Sam"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"to": "not an address"}, "not an address is not an email address."),
        ({"to": ""}, "Give the address to send the test to."),
        ({"to": "me@acme.test", "event": "{plan"}, "The event data is not valid JSON"),
        ({"to": "me@acme.test", "email": "nobody@example.com"}, "No contact has the email address"),
    ],
)
def test_a_test_send_with_bad_input_says_why_and_keeps_what_was_typed(admin_client, data, error):
    template = TemplateFactory()

    response = admin_client.post(send_test_url(template), data)

    assert response.status_code == 200
    body = response.content.decode()
    assert error in body
    if data["to"]:
        assert f'value="{html.escape(data["to"])}"' in body
    assert not Message.objects.exists()


def test_a_test_send_needs_permission_to_change_templates(client):
    template = TemplateFactory()
    staff_with(client, "view_template", "view_contact")

    response = client.post(send_test_url(template), {"to": "me@acme.test"})
    page = page_text(client.get(preview_url(template)))

    assert response.status_code == 403
    assert "Send a test" not in page
    assert not Message.objects.exists()


def test_a_test_send_needs_a_post_with_a_csrf_token(admin_user):
    template = TemplateFactory()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    get = client.get(send_test_url(template), {"to": "me@acme.test"})
    post = client.post(send_test_url(template), {"to": "me@acme.test"})

    assert get.status_code == 405
    assert post.status_code == 403
    assert not Message.objects.exists()


def test_the_preview_offers_a_test_send_to_the_staff_members_own_address(admin_client, admin_user):
    template = TemplateFactory()

    body = admin_client.get(preview_url(template), {"event": '{"a": 1}'}).content.decode()

    form = body[body.index(f'action="{send_test_url(template)}"') :]
    form = form[: form.index("</form>")]
    assert 'name="csrfmiddlewaretoken"' in form
    assert f'name="to" id="id_to" value="{admin_user.email}"' in form
    assert 'name="event" value="{&quot;a&quot;: 1}"' in form
    assert '<input type="submit" value="Send a test to this address">' in form


@pytest.mark.django_db(transaction=True)
def test_an_sms_template_sends_its_test_to_a_phone_number(admin_client, outbox):
    sms = MessageTypeFactory(channel=ChannelFactory(name="SMS", medium=Channel.Medium.SMS))
    template = TemplateFactory(
        message_type=sms, subject="", html_body="", text_body="Hi {{ firstName }}"
    )

    page = page_text(admin_client.get(preview_url(template)))
    refused = admin_client.post(send_test_url(template), {"to": "me@acme.test"})
    sent = admin_client.post(send_test_url(template), {"to": "+44 20 7946 0958"})

    assert '<input type="submit" value="Send a test to this phone number">' in page
    assert 'type="tel" name="to" id="id_to" value=""' in page
    assert refused.status_code == 200
    assert "me@acme.test" in refused.content.decode()
    assert sent.status_code == 302
    assert [(line["to"], line["text"]) for line in outbox("sms")] == [("+442079460958", "Hi Sam")]


def test_a_webhook_template_offers_no_test_send(admin_client):
    hook = MessageTypeFactory(channel=ChannelFactory(name="Hooks", medium=Channel.Medium.WEBHOOK))
    template = TemplateFactory(
        message_type=hook, subject="", html_body="", link_url="https://x.test", text_body="{}"
    )

    body = page_text(admin_client.get(preview_url(template)))

    assert "Send a test" not in body
