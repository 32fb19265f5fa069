from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from messaging.models import Message, Suppression, Template
from subscriptions.models import Channel
from tests.admin_pages import form_data, result_rows
from tests.databases import ESTIMATED_COUNT
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    MessageFactory,
    MessageTypeFactory,
    SuppressionFactory,
    TemplateFactory,
    UserFactory,
)


def template_form(message_type, **fields):
    data = {
        "name": "Welcome",
        "message_type": message_type.pk,
        "from_name": "",
        "from_email": "",
        "reply_to": "",
        "subject": "Welcome, {{ contact.first_name }}",
        "preheader": "",
        "html_body": "<p>Hi {{ contact.first_name }}</p>",
        "text_body": "",
        "title": "",
        "http_method": "",
        "link_url": "",
    }
    return {**data, **fields}


@pytest.mark.parametrize(
    ("model", "make_rows", "queries"),
    [
        (Template, lambda n: TemplateFactory.create_batch(n), 6),
        pytest.param(
            Message,
            lambda n: MessageFactory.create_batch(n, sent_at="2025-03-01T09:30Z"),
            5,
            marks=pytest.mark.postgresql(reason=ESTIMATED_COUNT),
        ),
        (Suppression, lambda n: SuppressionFactory.create_batch(n), 7),
    ],
    ids=["template", "message", "suppression"],
)
def test_changelist_queries_do_not_grow_with_rows(
    admin_client, django_assert_num_queries, model, make_rows, queries
):
    url = reverse(f"admin:messaging_{model._meta.model_name}_changelist")
    make_rows(3)

    with django_assert_num_queries(queries):
        assert len(result_rows(admin_client.get(url))) == 3
    make_rows(3)
    with django_assert_num_queries(queries):
        assert len(result_rows(admin_client.get(url))) == 6


def test_message_changelist_shows_the_send_log(admin_client):
    MessageFactory(
        contact=ContactFactory(email="ada@example.com"),
        template=TemplateFactory(name="Welcome"),
        status=Message.Status.SKIPPED,
        skip_reason=Message.SkipReason.FREQUENCY_CAP,
    )

    (row,) = result_rows(admin_client.get(reverse("admin:messaging_message_changelist")))

    shown = ("ada@example.com", "Welcome", "Skipped", "Frequency cap of the message type reached")
    for text in shown:
        assert text in row


def test_message_search_by_a_contacts_email_lists_only_their_messages(admin_client):
    ada = ContactFactory(email="ada@example.com")
    MessageFactory.create_batch(2, contact=ada)
    MessageFactory()

    rows = result_rows(
        admin_client.get(reverse("admin:messaging_message_changelist"), {"q": "ada@example.com"})
    )

    assert len(rows) == 2


def test_messages_can_be_read_but_not_added_changed_or_deleted_in_the_admin(admin_client):
    message = MessageFactory(status=Message.Status.SENT)
    change_url = reverse("admin:messaging_message_change", args=[message.pk])

    page = admin_client.get(change_url)
    add = admin_client.get(reverse("admin:messaging_message_add"))
    change = admin_client.post(change_url, {"status": "queued"})
    delete = admin_client.post(
        reverse("admin:messaging_message_delete", args=[message.pk]), {"post": "yes"}
    )

    assert page.status_code == 200
    assert message.idempotency_key in page.content.decode()
    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    message.refresh_from_db()
    assert message.status == Message.Status.SENT


def test_saving_a_template_strips_scripts_from_its_html(admin_client):
    message_type = MessageTypeFactory()

    response = admin_client.post(
        reverse("admin:messaging_template_add"),
        template_form(
            message_type,
            html_body='<p onclick="steal()">Hi</p><script>steal()</script><a href="https://x.test">go</a>'
            '<a href="{{ links.unsubscribe }}">Unsubscribe</a>',
        ),
    )

    assert response.status_code == 302
    html = Template.objects.get(name="Welcome").html_body
    assert "<script" not in html
    assert "steal()" not in html
    assert "<p>Hi</p>" in html
    assert 'href="https://x.test"' in html


def test_a_template_with_a_syntax_error_shows_a_form_error(admin_client):
    message_type = MessageTypeFactory()

    response = admin_client.post(
        reverse("admin:messaging_template_add"),
        template_form(message_type, html_body="<p>{% if contact.first_name %}Hi</p>"),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "html_body" in errors
    assert "Template error" in errors["html_body"][0]
    assert not Template.objects.exists()


def test_a_marketing_email_without_an_unsubscribe_link_is_refused(admin_client):
    message_type = MessageTypeFactory()

    response = admin_client.post(
        reverse("admin:messaging_template_add"),
        template_form(message_type, html_body="<p>Buy now!</p>"),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "needs an unsubscribe link" in errors["html_body"][0]
    assert not Template.objects.exists()


def test_a_transactional_email_needs_no_unsubscribe_link(admin_client):
    receipts = MessageTypeFactory(
        channel=ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
    )

    response = admin_client.post(
        reverse("admin:messaging_template_add"),
        template_form(receipts, html_body="<p>Your receipt</p>"),
    )

    assert response.status_code == 302
    assert Template.objects.get().html_body == "<p>Your receipt</p>"


def test_template_form_groups_fields_by_medium(admin_client):
    response = admin_client.get(reverse("admin:messaging_template_add"))

    fieldsets = {name: opts["fields"] for name, opts in response.context["adminform"].fieldsets}
    assert "html_body" in fieldsets["Email"]
    assert "text_body" in fieldsets["Text"]
    assert ("http_method", "link_url") in fieldsets["Push and webhook"]


def test_staff_can_add_and_remove_a_suppression(admin_client):
    add = admin_client.post(
        reverse("admin:messaging_suppression_add"),
        {"address": "Ada@Example.com", "reason": "manual", "note": "Asked by phone"},
    )
    suppression = Suppression.objects.get()
    delete = admin_client.post(
        reverse("admin:messaging_suppression_delete", args=[suppression.pk]), {"post": "yes"}
    )

    assert add.status_code == 302
    assert (suppression.address, suppression.reason) == ("ada@example.com", "manual")
    assert delete.status_code == 302
    assert not Suppression.objects.exists()


def test_a_new_suppression_defaults_to_added_by_staff(admin_client):
    response = admin_client.get(reverse("admin:messaging_suppression_add"))

    assert response.context["adminform"].form["reason"].value() == "manual"


@pytest.mark.parametrize("model", ["template", "message", "suppression"])
def test_staff_without_permissions_cannot_see_a_changelist(client, db, model):
    client.force_login(UserFactory(is_staff=True, is_superuser=False))

    response = client.get(reverse(f"admin:messaging_{model}_changelist"))

    assert response.status_code == 403


def test_every_messaging_change_page_loads(admin_client):
    MessageFactory()
    SuppressionFactory()

    for model in (Template, Message, Suppression):
        name = f"admin:messaging_{model._meta.model_name}"
        response = admin_client.get(reverse(f"{name}_change", args=[model.objects.first().pk]))

        assert (model, response.status_code) == (model, 200)


def test_saving_a_template_strips_markup_from_the_preheader(admin_client):
    message_type = MessageTypeFactory()

    response = admin_client.post(
        reverse("admin:messaging_template_add"),
        template_form(
            message_type,
            preheader='Hi <script>steal()</script><img src=x onerror="steal()">{{ firstName }}, '
            "<b>50%</b> off &amp; more",
            html_body='<p>Hi</p><a href="{{ links.unsubscribe }}">Unsubscribe</a>',
        ),
    )

    assert response.status_code == 302
    preheader = Template.objects.get(name="Welcome").preheader
    assert preheader == "Hi {{ firstName }}, 50% off & more"


@pytest.mark.parametrize("field", ["from_name", "from_email", "reply_to", "subject"])
@pytest.mark.parametrize("line_break", ["\n", "\r", "\r\n"])
def test_a_header_field_with_a_line_break_is_refused_with_a_form_error(
    admin_client, field, line_break
):
    message_type = MessageTypeFactory()
    value = {
        "from_name": f"Acme{line_break}Bcc: victim@example.com",
        "from_email": f"news@acme.test{line_break}Bcc: victim@example.com",
        "reply_to": f"help@acme.test{line_break}Bcc: victim@example.com",
        "subject": f"Hello{line_break}Bcc: victim@example.com",
    }[field]

    response = admin_client.post(
        reverse("admin:messaging_template_add"), template_form(message_type, **{field: value})
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors
    assert not Template.objects.exists()


@pytest.mark.parametrize("field", ["from_name", "subject"])
def test_the_line_break_error_names_the_field(db, field):
    template = TemplateFactory.build(
        message_type=MessageTypeFactory(), **{field: "Hello\nBcc: victim@example.com"}
    )

    with pytest.raises(ValidationError) as caught:
        template.full_clean()

    label = Template._meta.get_field(field).verbose_name
    assert caught.value.message_dict[field] == [
        f"The {label} must be a single line: remove the line break."
    ]


def test_a_messages_page_lists_what_happened_to_it(admin_client):
    from django.utils import timezone

    from messaging.models import Engagement

    message = MessageFactory(status=Message.Status.SENT)
    for kind in ("opened", "complained"):
        Engagement.objects.create(
            message=message,
            contact=message.contact,
            kind=kind,
            source="provider",
            occurred_at=timezone.now(),
        )

    response = admin_client.get(reverse("admin:messaging_message_change", args=[message.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert page.index("Opened") < page.index("Complained")


DESIGNED = (Path(__file__).parent / "emails" / "designed.html").read_text()


def test_a_designed_email_round_trips_through_the_admin_form(admin_client):
    # Given a designed email saved through the add form
    message_type = MessageTypeFactory()
    added = admin_client.post(
        reverse("admin:messaging_template_add"),
        template_form(message_type, html_body=DESIGNED),
        follow=True,
    )
    template = Template.objects.get(name="Welcome")
    saved = template.html_body
    # When it is opened and saved again unchanged
    change_url = reverse("admin:messaging_template_change", args=[template.pk])
    again = admin_client.post(change_url, form_data(admin_client.get(change_url)), follow=True)

    # Then it kept its look and its template tags, and nothing was reported taken out
    for kept in (
        "<!DOCTYPE html PUBLIC",
        '<style type="text/css">',
        ".button-cell { border-radius: 6px; background-color: #0b6e4f; }",
        '<body style="margin: 0; padding: 0; background-color: #eef2f5;',
        "padding: 14px 28px; background: #0b6e4f; color: #ffffff; border-radius: 6px;",
        'href="{{ links.unsubscribe }}"',
    ):
        assert kept in saved
    template.refresh_from_db()
    assert template.html_body == saved
    for response in (added, again):
        assert [m.level_tag for m in response.context["messages"]] == ["success"]


def test_saving_hostile_html_says_what_was_taken_out(admin_client):
    message_type = MessageTypeFactory()

    response = admin_client.post(
        reverse("admin:messaging_template_add"),
        template_form(
            message_type,
            html_body='<p onclick="steal()" style="position: fixed">Hi</p><script>steal()</script>'
            '<a href="{{ links.unsubscribe }}">Unsubscribe</a>',
        ),
        follow=True,
    )

    (warning,) = [m for m in response.context["messages"] if m.level_tag == "warning"]
    assert str(warning) == (
        "Taken out of the HTML body, as email clients could run it or Waymark does not keep it: "
        "the CSS property position; onclick attributes of <p>; <script> elements with their "
        "content."
    )
    assert "&lt;script&gt; elements" in response.content.decode()


def test_a_template_tag_between_attributes_is_a_form_error_and_loses_nothing(admin_client):
    message_type = MessageTypeFactory()
    html = (
        '<td {% if vip %}bgcolor="gold"{% endif %}>Hi</td><a href="{{ links.unsubscribe }}">U</a>'
    )

    response = admin_client.post(
        reverse("admin:messaging_template_add"), template_form(message_type, html_body=html)
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["html_body"][0].startswith(
        "The template tag {% if vip %} stands between the attributes of <td>"
    )
    assert form["html_body"].value() == html
    assert not Template.objects.exists()


def test_an_unclosed_tag_is_a_form_error_naming_the_field(admin_client):
    message_type = MessageTypeFactory()

    response = admin_client.post(
        reverse("admin:messaging_template_add"),
        template_form(message_type, subject="Hi {{ contact.first_name"),
    )

    errors = response.context["adminform"].form.errors
    assert errors["subject"][0].startswith(
        'Template error in the subject: "{{" is not closed in "{{ contact.first_name"'
    )


def test_the_template_editor_has_a_variable_reference(admin_client):
    template = TemplateFactory()

    for url in (
        reverse("admin:messaging_template_add"),
        reverse("admin:messaging_template_change", args=[template.pk]),
    ):
        body = admin_client.get(url).content.decode()
        reference = body[body.index('id="variable-reference"') :]
        reference = reference[: reference.index("</details>")]
        for name in (
            "contact.first_name",
            "contact.&lt;attribute&gt;",
            "event.&lt;field&gt;",
            "links.unsubscribe",
            "links.preferences",
            "links.view_in_browser",
            "unsubscribeUrl",
            "hostedUnsubscribeUrl",
            "viewInBrowserUrl",
        ):
            assert f"<code>{{{{ {name} }}}}</code>" in reference


def test_admin_pages_escape_what_staff_wrote(admin_client):
    script = "<script>alert(1)</script>"
    template = TemplateFactory(
        name=f"Promo {script}",
        subject=f"Sale {script}",
        from_name=f"Acme {script}",
        preheader="Deals",
    )

    pages = [
        admin_client.get(reverse("admin:messaging_template_changelist")),
        admin_client.get(reverse("admin:messaging_template_change", args=[template.pk])),
        admin_client.get(reverse("admin:messaging_template_preview", args=[template.pk])),
    ]

    for response in pages:
        body = response.content.decode()
        assert response.status_code == 200
        assert script not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
