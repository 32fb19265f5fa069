import html
import re

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.admin import ContactListAdmin, EstimatedCountPaginator
from contacts.models import ApiKey, Contact, ContactList, Event, ListMembership, Segment
from contacts.services import api_key_authenticate, api_key_create
from tests.admin_pages import result_rows
from tests.databases import ESTIMATED_COUNT
from tests.factories import (
    ContactFactory,
    ContactListFactory,
    EventFactory,
    ListMembershipFactory,
    MessageTypeFactory,
    SegmentFactory,
    SubscriptionFactory,
    UserFactory,
)


@pytest.mark.postgresql(reason=ESTIMATED_COUNT)
def test_contact_changelist_queries_do_not_grow_with_contacts(
    admin_client, django_assert_num_queries
):
    ContactFactory.create_batch(3)
    url = reverse("admin:contacts_contact_changelist")

    with django_assert_num_queries(5):
        response = admin_client.get(url)
    assert len(result_rows(response)) == 3
    ContactFactory.create_batch(3, attributes={"firstName": "Grace"})
    with django_assert_num_queries(5):
        response = admin_client.get(url)

    assert len(result_rows(response)) == 6
    assert response.content.count(b'<td class="field-first_name">Grace</td>') == 3


def test_contact_list_changelist_counts_members_without_n_plus_one(
    admin_client, django_assert_num_queries
):
    for members in (1, 2, 3):
        contact_list = ContactListFactory()
        ListMembershipFactory.create_batch(members, contact_list=contact_list)
    url = reverse("admin:contacts_contactlist_changelist")

    with django_assert_num_queries(5):
        response = admin_client.get(url)
    assert len(result_rows(response)) == 3
    for _ in range(3):
        ListMembershipFactory.create_batch(2, contact_list=ContactListFactory())
    with django_assert_num_queries(5):
        response = admin_client.get(url)

    rows = result_rows(response)
    assert len(rows) == 6
    counts = sorted(int(re.search(r"lists__id__exact=\d+\">(\d+)</a>", row)[1]) for row in rows)
    assert counts == [1, 2, 2, 2, 2, 3]


@pytest.mark.postgresql(reason="PostgreSQL's statistics estimate a big list's members")
def test_lists_past_the_count_cap_show_the_estimate_in_one_query_for_all(admin_client, monkeypatch):
    # Given lists counted up to 5 members: two of 12 and 9, one of 2
    monkeypatch.setattr(ContactListAdmin, "members_counted_up_to", 5)
    big, bigger, small = (ContactListFactory(name=n) for n in ("Big", "Bigger", "Small"))
    for contact_list, members in ((big, 9), (bigger, 12), (small, 2)):
        ListMembershipFactory.create_batch(members, contact_list=contact_list)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ListMembership._meta.db_table}")
    url = reverse("admin:contacts_contactlist_changelist")
    admin_client.get(url)

    # When the lists are shown, then with a fourth big list
    with CaptureQueriesContext(connection) as three:
        first = admin_client.get(url)
    ListMembershipFactory.create_batch(7, contact_list=ContactListFactory(name="Another"))
    with CaptureQueriesContext(connection) as four:
        second = admin_client.get(url)

    # Then the big lists show their estimate, the small one its count, and
    # the estimates cost one query whatever their number
    members = {
        re.search(r"field-name[^>]*>(?:<a[^>]*>)?(\w+)", row)[1]: re.search(
            r"lists__id__exact=\d+\">([^<]+)</a>", row
        )[1]
        for row in result_rows(first)
    }
    assert members == {"Big": "about 9", "Bigger": "about 12", "Small": "2"}
    assert "more than 5" in second.content.decode()  # not analysed yet: no estimate
    assert len(three) == len(four)
    counts = [q["sql"] for q in three if "count(*) FROM (SELECT" in q["sql"]]
    assert counts and all("LIMIT 6" in sql for sql in counts)  # counted one past the cap


def test_segment_changelist_queries_do_not_grow_with_segments(
    admin_client, django_assert_num_queries
):
    SegmentFactory.create_batch(3)
    url = reverse("admin:contacts_segment_changelist")

    with django_assert_num_queries(5):
        assert len(result_rows(admin_client.get(url))) == 3
    SegmentFactory.create_batch(3)
    with django_assert_num_queries(5):
        assert len(result_rows(admin_client.get(url))) == 6


@pytest.mark.postgresql(reason=ESTIMATED_COUNT)
def test_event_changelist_queries_do_not_grow_with_events(admin_client, django_assert_num_queries):
    EventFactory.create_batch(3)
    url = reverse("admin:contacts_event_changelist")

    with django_assert_num_queries(5):
        assert len(result_rows(admin_client.get(url))) == 3
    EventFactory.create_batch(3)
    with django_assert_num_queries(5):
        assert len(result_rows(admin_client.get(url))) == 6


def test_api_key_changelist_queries_do_not_grow_with_keys(
    admin_client, admin_user, django_assert_num_queries
):
    for n in range(3):
        api_key_create(name=f"Integration {n}", created_by=UserFactory())
    url = reverse("admin:contacts_apikey_changelist")

    with django_assert_num_queries(5):
        assert len(result_rows(admin_client.get(url))) == 3
    for n in range(3):
        api_key_create(name=f"Other integration {n}", created_by=admin_user)
    with django_assert_num_queries(5):
        assert len(result_rows(admin_client.get(url))) == 6


@pytest.mark.postgresql(reason="PostgreSQL's statistics count the table")
def test_contact_changelist_of_a_big_table_is_counted_from_statistics(admin_client, monkeypatch):
    # Given a contacts table the planner's statistics call big
    ContactFactory.create_batch(3)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Contact._meta.db_table}")
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", 2)

    # When the changelist is shown
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse("admin:contacts_contact_changelist"))

    # Then it shows every contact without counting the table row by row
    assert len(result_rows(response)) == 3
    assert response.context["cl"].result_count == 3
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]


@pytest.mark.postgresql(reason="PostgreSQL's planner estimates the filtered count")
def test_a_filtered_changelist_is_counted_up_to_a_cap_then_estimated(admin_client, monkeypatch):
    # Given more blocklisted contacts than the paginator counts one by one
    ContactFactory.create_batch(5, blocklisted=True)
    ContactFactory(blocklisted=False)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Contact._meta.db_table}")
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 3)
    url = reverse("admin:contacts_contact_changelist")

    # When the list is filtered
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url, {"blocklisted__exact": "1"})

    # Then every match is listed, counted only up to the cap, the planner's
    # estimate standing in beyond it
    assert len(result_rows(response)) == 5
    assert response.context["cl"].result_count >= 3
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT 3" in sql for sql in counts)


def test_a_filtered_changelist_under_the_cap_is_counted_exactly(admin_client, monkeypatch):
    ContactFactory.create_batch(2, blocklisted=True)
    ContactFactory(blocklisted=False)
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 3)

    response = admin_client.get(
        reverse("admin:contacts_contact_changelist"), {"blocklisted__exact": "1"}
    )

    assert response.context["cl"].result_count == 2


def test_contact_search_finds_a_contact_by_exact_email_or_phone(admin_client):
    ContactFactory(email="ada@example.com", phone="+14155550123")
    ContactFactory(email="grace@example.com")
    url = reverse("admin:contacts_contact_changelist")

    by_email = result_rows(admin_client.get(url, {"q": " ADA@example.com "}))
    by_phone = result_rows(admin_client.get(url, {"q": "+14155550123"}))

    assert len(by_email) == 1 and "ada@example.com" in by_email[0]
    assert len(by_phone) == 1 and "ada@example.com" in by_phone[0]


def test_event_search_by_a_contacts_email_lists_only_their_events(admin_client):
    ada = ContactFactory(email="ada@example.com")
    EventFactory.create_batch(2, contact=ada, name="viewed_pricing")
    EventFactory(name="viewed_pricing")

    rows = result_rows(
        admin_client.get(reverse("admin:contacts_event_changelist"), {"q": "ada@example.com"})
    )

    assert len(rows) == 2
    assert all("ada@example.com" in row for row in rows)


def test_contact_change_page_shows_lists_subscriptions_and_history_links(admin_client):
    contact = ContactFactory()
    ListMembershipFactory(contact=contact, contact_list=ContactListFactory(name="Beta testers"))
    SubscriptionFactory(contact=contact, message_type=MessageTypeFactory(name="Product news"))

    response = admin_client.get(reverse("admin:contacts_contact_change", args=[contact.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Beta testers" in body
    assert "Marketing email / Product news" in body
    for changelist in (
        "contacts_event_changelist",
        "messaging_message_changelist",
        "subscriptions_consentrecord_changelist",
    ):
        assert f"{reverse(f'admin:{changelist}')}?contact__id__exact={contact.pk}" in body


def test_history_link_lists_only_that_contacts_events(admin_client):
    contact = ContactFactory()
    EventFactory.create_batch(2, contact=contact)
    EventFactory()

    response = admin_client.get(
        reverse("admin:contacts_event_changelist"), {"contact__id__exact": contact.pk}
    )

    assert len(result_rows(response)) == 2


def test_adding_a_list_on_the_contact_page_records_an_admin_membership(admin_client):
    contact = ContactFactory(email="ada@example.com", attributes={"plan": "pro"})
    beta = ContactListFactory(name="Beta testers")

    response = admin_client.post(
        reverse("admin:contacts_contact_change", args=[contact.pk]),
        {
            "email": "ada@example.com",
            "user_id": "",
            "phone": "",
            "timezone": "Europe/London",
            "locale": "",
            "attributes": '{"plan": "pro"}',
            "listmembership_set-TOTAL_FORMS": "1",
            "listmembership_set-INITIAL_FORMS": "0",
            "listmembership_set-0-contact_list": beta.pk,
            "subscriptions-TOTAL_FORMS": "0",
            "subscriptions-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.timezone == "Europe/London"
    membership = contact.listmembership_set.get()
    assert (membership.contact_list, membership.source) == (beta, "admin")


def test_adding_an_event_in_the_admin_records_it(admin_client):
    contact = ContactFactory(email="ada@example.com")

    response = admin_client.post(
        reverse("admin:contacts_event_add"),
        {
            "contact": contact.pk,
            "name": "viewed_pricing",
            "data": '{"plan": "pro"}',
            "occurred_at_0": "2025-03-01",
            "occurred_at_1": "09:30:00",
            "client_event_id": "",
            "campaign_id": "",
            "template_id": "",
        },
    )

    assert response.status_code == 302
    event = Event.objects.get()
    assert (event.contact, event.name, event.data) == (contact, "viewed_pricing", {"plan": "pro"})
    assert event.client_event_id  # given one, so that re-delivery is idempotent


def test_events_cannot_be_rewritten_in_the_admin(admin_client):
    event = EventFactory(name="viewed_pricing")

    response = admin_client.post(
        reverse("admin:contacts_event_change", args=[event.pk]), {"name": "purchased"}
    )

    assert response.status_code == 403
    event.refresh_from_db()
    assert event.name == "viewed_pricing"


def test_adding_an_api_key_shows_the_raw_key_once_and_stores_only_its_hash(
    admin_client, admin_user
):
    # When staff add a key, giving its name and scope
    response = admin_client.post(
        reverse("admin:contacts_apikey_add"), {"name": "Shop backend", "scope": "server"}
    )

    # Then the page they get shows the raw key, uncached, and no message carries it
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    raw_key = re.search(r'<code id="raw-api-key"[^>]*>(wm_[^<]+)</code>', page)[1]
    assert not [m for m in get_messages(response.wsgi_request) if "wm_" in str(m)]
    # and only a hash of it is stored
    api_key = ApiKey.objects.get()
    assert (api_key.name, api_key.created_by) == ("Shop backend", admin_user)
    stored = [str(getattr(api_key, f.attname)) for f in ApiKey._meta.concrete_fields]
    assert not [value for value in stored if raw_key in value]
    # and the key works
    assert api_key_authenticate(raw_key) == api_key
    # and it is not shown again
    again = admin_client.get(reverse("admin:contacts_apikey_change", args=[api_key.pk]))
    assert raw_key not in again.content.decode()
    assert api_key.prefix in again.content.decode()


def test_api_key_add_form_asks_only_for_a_name_and_a_scope(admin_client):
    response = admin_client.get(reverse("admin:contacts_apikey_add"))

    assert list(response.context["adminform"].form.fields) == ["name", "scope"]


def test_a_client_side_key_can_be_made_in_the_admin(admin_client):
    admin_client.post(reverse("admin:contacts_apikey_add"), {"name": "iOS", "scope": "client"})

    assert ApiKey.objects.get().scope == ApiKey.Scope.CLIENT


@pytest.mark.parametrize(
    "lookup", ["key_hash__startswith", "key_hash", "key_hash__regex", "key_hash__gt"]
)
def test_the_api_key_list_cannot_be_filtered_by_the_hash(admin_client, lookup):
    api_key, _ = api_key_create(name="Shop backend")

    response = admin_client.get(
        reverse("admin:contacts_apikey_changelist"), {lookup: api_key.key_hash[:1]}
    )

    assert response.status_code == 400
    assert api_key.key_hash not in response.content.decode()


def test_api_key_change_page_edits_only_the_name(admin_client):
    api_key, raw_key = api_key_create(name="Shop backend")
    url = reverse("admin:contacts_apikey_change", args=[api_key.pk])

    response = admin_client.post(
        url, {"name": "Shop backend (v2)", "prefix": "wm_forged", "revoked_at_0": "2025-01-01"}
    )

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.name == "Shop backend (v2)"
    assert raw_key.startswith(api_key.prefix)
    assert api_key.revoked_at is None


def test_revoke_action_revokes_the_selected_keys(admin_client):
    revoked, revoked_raw = api_key_create(name="Old shop")
    kept, kept_raw = api_key_create(name="New shop")

    response = admin_client.post(
        reverse("admin:contacts_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [revoked.pk]},
        follow=True,
    )

    assert "Revoked 1 API key(s)." in response.content.decode()
    assert api_key_authenticate(revoked_raw) is None
    assert api_key_authenticate(kept_raw) == kept


@pytest.mark.parametrize("model", ["contact", "contactlist", "segment", "event", "apikey"])
def test_staff_without_permissions_cannot_see_a_changelist(client, db, model):
    client.force_login(UserFactory(is_staff=True, is_superuser=False))

    response = client.get(reverse(f"admin:contacts_{model}_changelist"))

    assert response.status_code == 403


def test_a_lists_member_count_links_to_its_members(admin_client):
    beta = ContactListFactory(name="Beta testers")
    ListMembershipFactory.create_batch(2, contact_list=beta)
    ContactFactory()

    response = admin_client.get(
        reverse("admin:contacts_contact_changelist"), {"lists__id__exact": beta.pk}
    )

    assert len(result_rows(response)) == 2


def test_every_contacts_change_page_loads(admin_client, admin_user):
    contact = ContactFactory(phone="+14155550123")
    ListMembershipFactory(contact=contact)
    EventFactory(contact=contact)
    SegmentFactory()
    api_key_create(name="Shop backend", created_by=admin_user)

    for model in (Contact, ContactList, Segment, Event, ApiKey):
        name = f"admin:contacts_{model._meta.model_name}"
        change = admin_client.get(reverse(f"{name}_change", args=[model.objects.first().pk]))
        add = admin_client.get(reverse(f"{name}_add"))

        assert (model, change.status_code, add.status_code) == (model, 200, 200)


def test_the_segment_form_shows_why_a_condition_tree_is_refused_and_keeps_the_segment(
    admin_client,
):
    segment = SegmentFactory(name="Pro")
    url = reverse("admin:contacts_segment_change", args=[segment.pk])

    response = admin_client.post(
        url,
        {
            "name": "Pro",
            "description": "",
            "conditions": '{"all": [{"attribute": "plan", "op": "like", "value": "pro"}]}',
        },
    )

    assert response.status_code == 200
    assert "all[0]: unknown attribute operator 'like'" in html.unescape(response.content.decode())
    segment.refresh_from_db()
    assert segment.conditions == {"attribute": "plan", "op": "eq", "value": "pro"}
