"""The contact page in the admin: everything about one contact, read only."""

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.widgets import (
    AutocompleteSelect,
    AutocompleteSelectMultiple,
    RelatedFieldWidgetWrapper,
)
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact
from contacts.timeline import Cursor
from messaging.models import Engagement, Message
from tests.factories import (
    ConsentRecordFactory,
    ContactFactory,
    ContactListFactory,
    EngagementFactory,
    EnrollmentFactory,
    EventFactory,
    ListMembershipFactory,
    MessageFactory,
    StepRunFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def page_url(contact, **query):
    url = reverse("admin:contacts_contact_page", args=[contact.pk])
    return f"{url}?{'&'.join(f'{k}={v}' for k, v in query.items())}" if query else url


def staff_with(*codenames):
    user = UserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def timeline_html(response):
    body = response.content.decode()
    return body[body.index('id="contact-timeline"') :]


def test_the_page_shows_profile_attributes_and_lists(admin_client):
    contact = ContactFactory(
        email="ada@example.com",
        user_id="u-1",
        phone="+14155550123",
        attributes={
            "firstName": "Ada",
            "vip": True,
            "address": {"city": "London", "zip": "N1"},
            "bio": "<script>alert(1)</script>",
        },
    )
    ListMembershipFactory(contact=contact, contact_list=ContactListFactory(name="Beta testers"))

    response = admin_client.get(page_url(contact))

    assert response.status_code == 200
    body = response.content.decode()
    assert '<th scope="row"><code>firstName</code></th><td>Ada</td>' in body
    assert '<th scope="row"><code>vip</code></th><td>yes</td>' in body
    assert "&quot;city&quot;: &quot;London&quot;" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>alert(1)" not in body
    assert "<td>Beta testers</td>" in body
    assert "+14155550123" in body


def test_the_change_form_and_the_list_link_to_the_page(admin_client):
    contact = ContactFactory()
    link = f'href="{page_url(contact)}"'

    change = admin_client.get(reverse("admin:contacts_contact_change", args=[contact.pk]))
    listing = admin_client.get(reverse("admin:contacts_contact_changelist"))

    assert link in change.content.decode()
    assert link in listing.content.decode()


def test_the_timeline_shows_each_kind_of_entry(admin_client):
    contact = ContactFactory()
    EventFactory(contact=contact, name="project_created", data={"plan": "pro"})
    skipped = MessageFactory(
        contact=contact,
        status=Message.Status.SKIPPED,
        skip_reason=Message.SkipReason.NOT_OPTED_IN,
    )
    EngagementFactory(
        message=MessageFactory(contact=contact, status=Message.Status.SENT),
        kind=Engagement.Kind.CLICKED,
        url="https://waymark.test/pricing",
    )
    ConsentRecordFactory(contact=contact, note="asked by phone")
    StepRunFactory(enrollment=EnrollmentFactory(contact=contact), branch="yes")

    html = timeline_html(admin_client.get(page_url(contact)))

    assert "project_created" in html
    assert "&quot;plan&quot;: &quot;pro&quot;" in html
    assert f'{skipped.template.name}</a> — <span class="message-status">Skipped' in html
    assert "Skipped: Never subscribed to an opt-in message type" in html
    assert "Link: https://waymark.test/pricing" in html
    assert "Note: asked by phone" in html
    assert "(branch “yes”)" in html


def fill_history(contact, n):
    """n of each kind of timeline entry for `contact`."""
    start = timezone.now() - timedelta(days=1)
    for i in range(n):
        at = start + timedelta(minutes=i)
        EventFactory(contact=contact, occurred_at=at, data={"i": i})
        message = MessageFactory(
            contact=contact, status=Message.Status.SENT, sent_at=at, subject=f"Hello {i}"
        )
        EngagementFactory(message=message, occurred_at=at)
        ConsentRecordFactory(contact=contact)
        enrollment = EnrollmentFactory(contact=contact, entered_at=at)
        StepRunFactory(enrollment=enrollment, message=message)
        StepRunFactory(enrollment=enrollment, branch="no")


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return [query["sql"] for query in queries], response


def test_the_page_costs_the_same_queries_for_a_short_and_a_long_history(admin_client):
    few, many = ContactFactory(), ContactFactory()
    fill_history(few, 5)
    fill_history(many, 10)
    ListMembershipFactory.create_batch(5, contact=few)
    ListMembershipFactory.create_batch(10, contact=many)

    queries_few, response_few = count_queries(admin_client, page_url(few))
    queries_many, response_many = count_queries(admin_client, page_url(many))

    assert len(response_few.context["timeline"].entries) == 25
    assert len(response_many.context["timeline"].entries) == 25
    assert len(queries_few) == len(queries_many)
    assert not [sql for sql in queries_many if "COUNT(" in sql.upper()]


def test_the_older_page_goes_on_where_the_first_ended(admin_client):
    contact = ContactFactory()
    start = timezone.now() - timedelta(days=1)
    events = [
        EventFactory(contact=contact, occurred_at=start + timedelta(minutes=i)) for i in range(30)
    ]

    first = admin_client.get(page_url(contact))
    cursor = first.context["timeline"].next_cursor
    older = admin_client.get(page_url(contact, before=cursor))

    shown = [entry.id for entry in first.context["timeline"].entries]
    shown += [entry.id for entry in older.context["timeline"].entries]
    assert shown == [event.pk for event in reversed(events)]
    assert f'href="?before={cursor}"' in first.content.decode()
    assert older.context["timeline"].next_cursor == ""
    assert "(older)" in older.content.decode()


@pytest.mark.parametrize("cursor", ["garbage", "%00", "Zm9vfGJhcnxiYXo", "a" * 1000])
def test_a_garbage_cursor_shows_the_first_page(admin_client, cursor):
    contact = ContactFactory()
    newest = EventFactory(contact=contact, name="newest_thing")

    response = admin_client.get(page_url(contact, before=cursor))

    assert response.status_code == 200
    assert [entry.id for entry in response.context["timeline"].entries] == [newest.pk]
    assert "newest_thing" in timeline_html(response)


def test_a_cursor_from_another_time_still_pages_by_time(admin_client):
    contact = ContactFactory()
    old = EventFactory(contact=contact, occurred_at=timezone.now() - timedelta(days=3))
    EventFactory(contact=contact)
    cursor = Cursor(timezone.now() - timedelta(days=1), "event", 0).encode()

    response = admin_client.get(page_url(contact, before=cursor))

    assert [entry.id for entry in response.context["timeline"].entries] == [old.pk]


def test_staff_need_the_permission_to_view_contacts(client):
    contact = ContactFactory()
    client.force_login(staff_with("view_event"))

    assert client.get(page_url(contact)).status_code == 403


def test_people_who_are_not_staff_are_sent_to_log_in(client):
    contact = ContactFactory()
    user = UserFactory(is_staff=False)
    user.user_permissions.add(Permission.objects.get(codename="view_contact"))
    client.force_login(user)

    response = client.get(page_url(contact))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_a_viewer_sees_only_what_they_may_view(client):
    contact = ContactFactory(attributes={"firstName": "Grace"})
    EventFactory(contact=contact, name="project_created")
    MessageFactory(contact=contact, subject="Secret subject", status=Message.Status.SENT)
    client.force_login(staff_with("view_contact", "view_event"))

    response = client.get(page_url(contact))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Grace" in body
    assert "project_created" in body
    assert "Secret subject" not in body
    assert 'id="contact-subscriptions"' not in body
    assert ">Details</a>" in body  # not "Edit": they may not change the contact


def test_the_page_only_shows(admin_client):
    contact = ContactFactory()

    response = admin_client.post(page_url(contact), {"email": "x@example.com"})

    assert response.status_code == 405
    contact.refresh_from_db()
    assert contact.email != "x@example.com"


def test_an_unknown_contact_is_not_found(admin_client):
    assert admin_client.get(reverse("admin:contacts_contact_page", args=[0])).status_code == 404


# --- fields that point at a contact ---------------------------------------------


def contact_fields(model):
    return [
        field
        for field in model._meta.get_fields()
        if (field.many_to_one or field.many_to_many or field.one_to_one)
        and field.concrete
        and field.related_model is Contact
    ]


def may_edit(model_admin, request):
    if isinstance(model_admin, InlineModelAdmin):
        return model_admin.has_add_permission(request, None) or model_admin.has_change_permission(
            request
        )
    return model_admin.has_add_permission(request) or model_admin.has_change_permission(request)


def widgets_for_contacts(model_admin, request, parent_model=None):
    """(admin, field, widget) of every contact field `model_admin` edits."""
    if not may_edit(model_admin, request):
        return []  # read only: its forms show no widget at all
    shown = set(flatten_fieldsets(model_admin.get_fieldsets(request)))
    readonly = set(model_admin.get_readonly_fields(request))
    found = []
    for field in contact_fields(model_admin.model):
        if field.name not in shown or field.name in readonly:
            continue
        if parent_model is Contact:
            continue  # an inline's link to the contact it is shown on is never a field
        formfield = model_admin.formfield_for_dbfield(field, request)
        if formfield is None:
            continue
        widget = formfield.widget
        if isinstance(widget, RelatedFieldWidgetWrapper):
            widget = widget.widget
        found.append((type(model_admin).__name__, field.name, widget))
    return found


def test_every_admin_picks_contacts_by_autocomplete():
    """A select of every contact would load a million rows, and a raw id asks
    staff for a number they do not know."""
    request = RequestFactory().get("/admin/")
    request.user = UserFactory(is_superuser=True)
    found = []
    for model_admin in admin.site._registry.values():
        found += widgets_for_contacts(model_admin, request)
        for inline in model_admin.get_inline_instances(request):
            found += widgets_for_contacts(inline, request, parent_model=model_admin.model)

    assert found, "no admin edits a contact field: the check would check nothing"
    wrong = [
        f"{name}.{field}: {type(widget).__name__}"
        for name, field, widget in found
        if not isinstance(widget, AutocompleteSelect | AutocompleteSelectMultiple)
    ]
    assert wrong == [], wrong


def test_the_contact_autocomplete_finds_a_contact_by_exact_email(admin_client):
    ada = ContactFactory(email="ada@example.com")
    ContactFactory(email="grace@example.com")

    response = admin_client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": "contacts",
            "model_name": "event",
            "field_name": "contact",
            "term": "ADA@example.com",
        },
    )

    assert response.status_code == 200
    assert response.json()["results"] == [{"id": str(ada.pk), "text": "ada@example.com"}]


def test_the_event_form_offers_an_autocomplete_for_the_contact(admin_client):
    response = admin_client.get(reverse("admin:contacts_event_add"))

    select = re.search(r'<select name="contact"[^>]*>', response.content.decode())
    assert select is not None
    assert 'class="admin-autocomplete' in select.group(0)
    assert f'data-ajax--url="{reverse("admin:autocomplete")}"' in select.group(0)
