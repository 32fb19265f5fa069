"""Exporting a list's members or a segment's matches as CSV from the admin."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import (
    ContactFactory,
    ContactListFactory,
    ListMembershipFactory,
    SegmentFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_superuser=True))
    return client


def read_csv(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_a_list_exports_its_members_with_their_attributes_as_columns(admin_client):
    readers = ContactListFactory(name="Readers")
    ada = ContactFactory(
        email="ada@example.com",
        phone="+14155550123",
        attributes={"plan": "pro", "seats": 3, "tags": ["a", "b"]},
    )
    bob = ContactFactory(email="bob@example.com", user_id="u-bob", attributes={"vip": True})
    ContactFactory(email="not-a-member@example.com")
    ListMembershipFactory(contact_list=readers, contact=ada)
    ListMembershipFactory(contact_list=readers, contact=bob)

    response = admin_client.get(reverse("admin:contacts_contactlist_export", args=[readers.pk]))

    rows = read_csv(response)
    assert response["Content-Disposition"] == 'attachment; filename="list-readers.csv"'
    assert rows[0] == [
        "email", "userId", "phone", "timezone", "locale", "blocklisted", "createdAt",
        "plan", "seats", "tags", "vip",
    ]  # fmt: skip
    assert [row[:3] + row[5:6] + row[7:] for row in rows[1:]] == [
        ["ada@example.com", "", "+14155550123", "false", "pro", "3", '["a", "b"]', ""],
        ["bob@example.com", "u-bob", "", "false", "", "", "", "true"],
    ]


def test_a_segment_exports_who_matches_it(admin_client):
    ContactFactory(email="pro@example.com", attributes={"plan": "pro"})
    ContactFactory(email="free@example.com", attributes={"plan": "free"})
    pros = SegmentFactory(
        name="Pro plan", conditions={"attribute": "plan", "op": "eq", "value": "pro"}
    )

    rows = read_csv(admin_client.get(reverse("admin:contacts_segment_export", args=[pros.pk])))

    assert [row[0] for row in rows[1:]] == ["pro@example.com"]
    assert rows[0][-1] == "plan"


def test_the_segment_page_links_to_its_export_under_the_segments_admin(admin_client):
    # Given a segment
    pros = SegmentFactory(name="Pro plan", conditions={})

    # When staff open its page
    page = admin_client.get(reverse("admin:contacts_segment_change", args=[pros.pk]))

    # Then its export is offered at an address of the segment's own
    assert f'href="/admin/contacts/segment/{pros.pk}/export/"' in page.content.decode()


def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_exported_as_text(admin_client):
    readers = ContactListFactory()
    ListMembershipFactory(
        contact_list=readers,
        contact=ContactFactory(attributes={"note": '=HYPERLINK("http://x")', "delta": -2}),
    )

    rows = read_csv(
        admin_client.get(reverse("admin:contacts_contactlist_export", args=[readers.pk]))
    )

    assert rows[1][-2:] == ["-2", '\'=HYPERLINK("http://x")']


def test_the_segment_page_links_to_its_export(admin_client):
    segment = SegmentFactory(conditions={"attribute": "plan", "op": "eq", "value": "pro"})

    page = admin_client.get(reverse("admin:contacts_segment_change", args=[segment.pk]))

    export = reverse("admin:contacts_segment_export", args=[segment.pk])
    assert f'href="{export}">Export CSV</a>' in page.content.decode()


def test_staff_who_may_not_view_contacts_cannot_export(client):
    readers = ContactListFactory()
    staff = UserFactory()
    staff.user_permissions.add(Permission.objects.get(codename="view_contactlist"))
    client.force_login(staff)

    response = client.get(reverse("admin:contacts_contactlist_export", args=[readers.pk]))

    assert response.status_code == 403


def test_the_export_is_read_in_chunks_whatever_the_list_size(admin_client):
    def export_queries(size):
        contact_list = ContactListFactory()
        for _ in range(size):
            ListMembershipFactory(contact_list=contact_list)
        url = reverse("admin:contacts_contactlist_export", args=[contact_list.pk])
        with CaptureQueriesContext(connection) as queries:
            rows = read_csv(admin_client.get(url))
        assert len(rows) == size + 1
        return len(queries.captured_queries)

    assert export_queries(5) == export_queries(10)
