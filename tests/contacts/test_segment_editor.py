"""The segment editor: the condition form, and the live count and sample beside it."""

import html
import json
import re
import threading
import time

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.forms.conditions import ConditionEditor, condition_choices
from contacts.models import Contact, Segment
from contacts.selectors import audience_preview
from tests.admin_pages import result_rows
from tests.factories import (
    ContactFactory,
    ContactListFactory,
    EventFactory,
    JourneyFactory,
    MessageTypeFactory,
    SegmentFactory,
    TemplateFactory,
    UserFactory,
)

PREVIEW = "admin:contacts_segment_preview"


def shown_conditions(response):
    """The condition tree in the page's JSON box, as the browser would post it back."""
    body = response.content.decode()
    found = re.search(r'<textarea name="conditions"[^>]*>\n?(.*?)</textarea>', body, re.S)
    return html.unescape(found.group(1))


def editor_options(response):
    body = response.content.decode()
    found = re.search(
        r'<script id="id_conditions-options" type="application/json">(.*?)</script>', body, re.S
    )
    return json.loads(found.group(1))


def every_rule_kind():
    contact_list = ContactListFactory(name="Newsletter")
    other = SegmentFactory(name="Churned")
    template = TemplateFactory(name="Welcome")
    message_type = MessageTypeFactory(name="Tips")
    journey = JourneyFactory(name="Onboarding")
    return {
        "attribute": {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
        "attribute date": {"attribute": "renewal_date", "op": "within_next_days", "value": 14},
        "attribute on a nested path": {"attribute": "address.city", "op": "eq", "value": "30"},
        "event": {
            "event": "purchase",
            "op": "done",
            "at_least": 3,
            "within_days": 90,
            "where": [
                {"field": "total", "op": "gte", "value": 50},
                {"field": "items", "op": "contains", "value": "sku-1"},
            ],
        },
        "no event": {"event": "cart_abandoned", "op": "not_done", "within_days": 7},
        "list": {"list": contact_list.pk, "op": "member"},
        "segment": {"segment": other.pk, "op": "not_member"},
        "message": {
            "message": "opened",
            "op": "done",
            "template": template.pk,
            "message_type": message_type.pk,
            "journey": journey.pk,
            "within_days": 30,
        },
        "groups": {
            "any": [
                {"not": {"all": [{"list": contact_list.pk, "op": "member"}]}},
                {"not": {"attribute": "plan", "op": "exists"}},
                {"all": [{"message": "received", "op": "not_done"}]},
            ]
        },
        "everyone": {},
    }


RULE_KINDS = [
    "attribute",
    "attribute date",
    "attribute on a nested path",
    "event",
    "no event",
    "list",
    "segment",
    "message",
    "groups",
    "everyone",
]


@pytest.mark.parametrize("kind", RULE_KINDS)
def test_the_segment_form_saves_and_shows_again_every_rule_kind(admin_client, kind):
    # Given a condition of each kind the editor writes
    tree = every_rule_kind()[kind]

    # When a segment is added with it, then opened again
    response = admin_client.post(
        reverse("admin:contacts_segment_add"),
        {"name": "Audience", "description": "", "conditions": json.dumps(tree)},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    segment = Segment.objects.get(name="Audience")
    page = admin_client.get(reverse("admin:contacts_segment_change", args=[segment.pk]))

    # Then the stored tree is the one posted, and the page shows it back as it is
    assert segment.conditions == tree
    assert json.loads(shown_conditions(page)) == tree


def test_the_editor_names_lists_segments_templates_and_journeys_but_not_the_segment_itself(
    admin_client,
):
    ContactListFactory(name="<b>VIP</b>")
    TemplateFactory(name="Welcome")
    JourneyFactory(name="Onboarding")
    pro = SegmentFactory(name="Pro")
    churned = SegmentFactory(name="Churned")

    response = admin_client.get(reverse("admin:contacts_segment_change", args=[pro.pk]))

    options = editor_options(response)
    choices = options["choices"]
    assert [name for _, name in choices["list"]] == ["<b>VIP</b>"]
    assert choices["segment"] == [[churned.pk, "Churned"]]
    assert [name for _, name in choices["template"]] == ["Welcome"]
    assert [name for _, name in choices["journey"]] == ["Onboarding"]
    assert options["operators"]["within_last_days"] == "is a date within the last N days"
    # Names reach the page only inside the JSON script, escaped.
    assert "<b>VIP</b>" not in response.content.decode()
    assert 'data-preview-url="/admin/contacts/segment/preview/"' in response.content.decode()


def test_the_segment_page_reads_the_names_once_whatever_their_number(admin_client):
    segment = SegmentFactory(name="Pro")
    url = reverse("admin:contacts_segment_change", args=[segment.pk])

    def queries_with(count):
        ContactListFactory.create_batch(count)
        TemplateFactory.create_batch(count)
        JourneyFactory.create_batch(count)
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(url)
        return len(queries), editor_options(response)["choices"]

    three, first = queries_with(3)
    six, second = queries_with(3)

    assert (len(first["list"]), len(second["list"]), len(second["journey"])) == (3, 6, 6)
    assert three == six


def test_editors_sharing_names_render_without_queries(db, django_assert_num_queries):
    contact_list = ContactListFactory(name="Newsletter")
    choices = condition_choices()
    editors = [ConditionEditor(choices=choices) for _ in range(3)]

    with django_assert_num_queries(0):
        pages = [
            editor.render(f"steps-{i}-condition", {"list": contact_list.pk, "op": "member"})
            for i, editor in enumerate(editors)
        ]

    assert all("Newsletter" in page for page in pages)
    assert 'id="steps-2-condition-options"' in pages[2]


def test_a_refused_rule_is_named_by_its_place_and_what_was_typed_is_kept(admin_client):
    segment = SegmentFactory(name="Pro")
    typed = {
        "all": [
            {"attribute": "plan", "op": "eq", "value": "pro"},
            {"not": {"event": "purchase", "op": "done", "within_days": 0}},
        ]
    }

    response = admin_client.post(
        reverse("admin:contacts_segment_change", args=[segment.pk]),
        {"name": "Pro", "description": "", "conditions": json.dumps(typed)},
    )

    assert response.status_code == 200
    assert "all[1].not: 'within_days' takes a whole number from 1 to 36500, not 0" in html.unescape(
        response.content.decode()
    )
    assert json.loads(shown_conditions(response)) == typed
    segment.refresh_from_db()
    assert segment.conditions == {"attribute": "plan", "op": "eq", "value": "pro"}


def test_a_segment_left_without_rules_is_everyone(admin_client):
    response = admin_client.post(
        reverse("admin:contacts_segment_add"),
        {"name": "Everyone", "description": "", "conditions": ""},
    )

    assert response.status_code == 302
    assert Segment.objects.get(name="Everyone").conditions == {}


def test_json_that_does_not_parse_is_refused_and_kept_as_typed(admin_client):
    typed = '{"attribute": "plan", "op": "eq", "value": "pro"'

    response = admin_client.post(
        reverse("admin:contacts_segment_add"),
        {"name": "Pro", "description": "", "conditions": typed},
    )

    assert response.status_code == 200
    assert "Enter a valid JSON." in response.content.decode()
    assert shown_conditions(response) == typed
    assert not Segment.objects.exists()


def test_a_segment_naming_itself_is_refused_with_the_cycle(admin_client):
    pro = SegmentFactory(name="Pro")
    buyers = SegmentFactory(name="Pro buyers", conditions={"segment": pro.pk, "op": "member"})

    response = admin_client.post(
        reverse("admin:contacts_segment_change", args=[pro.pk]),
        {
            "name": "Pro",
            "description": "",
            "conditions": json.dumps({"segment": buyers.pk, "op": "member"}),
        },
    )

    assert response.status_code == 200
    assert "a segment cannot contain itself: Pro → Pro buyers → Pro" in response.content.decode()


def test_the_segment_list_shows_each_description_and_last_update(admin_client):
    SegmentFactory(name="Pro", description="Paying customers on the pro plan")

    rows = result_rows(admin_client.get(reverse("admin:contacts_segment_changelist")))

    assert len(rows) == 1
    assert "Paying customers on the pro plan" in rows[0]
    assert re.search(r'<td class="field-updated_at[^"]*">[^<]*\d{4}', rows[0])


# --- The live count and sample ---------------------------------------------------------


def preview(client, tree, **extra):
    return client.post(reverse(PREVIEW), {"conditions": json.dumps(tree), **extra})


def test_the_preview_counts_the_matching_contacts_and_shows_ten_of_them(admin_client):
    pros = ContactFactory.create_batch(12, attributes={"plan": "pro"}, user_id=None)
    pros[-1].user_id = "u-12"
    pros[-1].save()
    ContactFactory.create_batch(3, attributes={"plan": "free"})

    response = preview(admin_client, {"attribute": "plan", "op": "eq", "value": "pro"})

    assert response.status_code == 200
    answer = response.json()
    assert (answer["count"], answer["count_capped"], answer["summary"]) == (
        12,
        False,
        "12 contacts.",
    )
    assert answer["warnings"] == []
    newest_first = sorted(pros, key=lambda c: -c.pk)[:10]
    assert answer["sample"] == [
        {
            "email": contact.email,
            "user_id": contact.user_id,
            "url": reverse("admin:contacts_contact_change", args=[contact.pk]),
        }
        for contact in newest_first
    ]
    assert answer["sample"][0]["user_id"] == "u-12"


def test_the_preview_answers_a_condition_given_in_the_address_too(admin_client):
    ada = ContactFactory(attributes={"plan": "pro"})
    EventFactory(contact=ada, name="purchase")
    ContactFactory(attributes={"plan": "pro"})
    tree = {
        "all": [
            {"attribute": "plan", "op": "eq", "value": "pro"},
            {"event": "purchase", "op": "done"},
        ]
    }

    response = admin_client.get(reverse(PREVIEW), {"conditions": json.dumps(tree)})

    assert response.status_code == 200
    assert response.json()["summary"] == "1 contact."
    assert [c["email"] for c in response.json()["sample"]] == [ada.email]


def test_the_preview_says_more_than_the_cap_rather_than_counting_on(db):
    ContactFactory.create_batch(4, attributes={"plan": "pro"})

    answer = audience_preview(tree={"attribute": "plan", "op": "eq", "value": "pro"}, count_cap=3)

    assert (answer.count, answer.count_capped, answer.summary) == (3, True, "More than 3 contacts.")
    assert len(answer.sample) == 4


def test_the_preview_of_a_segment_counts_whoever_its_tree_names(admin_client):
    pro = SegmentFactory(name="Pro")
    ContactFactory.create_batch(2, attributes={"plan": "pro"})
    ContactFactory(attributes={"plan": "free"})

    answer = preview(admin_client, {"segment": pro.pk, "op": "not_member"}).json()

    assert answer["summary"] == "1 contact."


def test_the_preview_refuses_a_segment_containing_itself(admin_client):
    pro = SegmentFactory(name="Pro")

    response = preview(admin_client, {"segment": pro.pk, "op": "member"}, segment=str(pro.pk))

    assert response.status_code == 400
    assert response.json() == {"error": "a segment cannot contain itself: Pro → Pro"}


def test_the_preview_names_the_rule_it_refuses(admin_client):
    response = preview(
        admin_client,
        {"any": [{"list": 1, "op": "member"}, {"attribute": "plan", "op": "like", "value": "x"}]},
    )

    assert response.status_code == 400
    assert response.json()["error"].startswith("any[1]: unknown attribute operator 'like'")


def test_the_preview_says_when_the_json_does_not_parse(admin_client):
    response = admin_client.post(reverse(PREVIEW), {"conditions": '{"attribute": '})

    assert response.status_code == 400
    assert response.json()["error"].startswith("The JSON is not valid: ")


def test_an_empty_condition_previews_everyone(admin_client):
    ContactFactory.create_batch(2)

    answer = admin_client.post(reverse(PREVIEW), {"conditions": ""}).json()

    assert answer["summary"] == "2 contacts."


def test_an_attribute_no_contact_has_counts_zero_with_a_warning(admin_client):
    ContactFactory(attributes={"plan": "pro", "address": {"city": "Lisbon"}})
    tree = {
        "all": [
            {"attribute": "plann", "op": "eq", "value": "pro"},
            {"attribute": "address.city", "op": "exists"},
            {"attribute": "address.zip", "op": "exists"},
            {"event": "purchased", "op": "done"},
        ]
    }

    answer = preview(admin_client, tree).json()

    assert (answer["count"], answer["summary"], answer["sample"]) == (0, "0 contacts.", [])
    assert answer["warnings"] == [
        "No contact has attribute “plann”.",
        "No contact has attribute “address.zip”.",
        "No contact has done event “purchased”.",
    ]


def test_an_attribute_some_contact_has_draws_no_warning(admin_client):
    ContactFactory(attributes={"plan": "free"})
    EventFactory(name="purchase")

    answer = preview(
        admin_client,
        {
            "all": [
                {"attribute": "plan", "op": "eq", "value": "pro"},
                {"event": "purchase", "op": "done"},
            ]
        },
    ).json()

    assert (answer["summary"], answer["warnings"]) == ("0 contacts.", [])


def test_the_preview_queries_do_not_grow_with_the_contacts_it_matches(admin_client):
    tree = {
        "all": [
            {"attribute": "plan", "op": "eq", "value": "pro"},
            {"event": "purchase", "op": "done"},
        ]
    }

    def queries_for(count):
        for contact in ContactFactory.create_batch(count, attributes={"plan": "pro"}):
            EventFactory(contact=contact, name="purchase")
        with CaptureQueriesContext(connection) as queries:
            answer = preview(admin_client, tree).json()
        return len(queries), answer

    five, first = queries_for(5)
    ten, second = queries_for(5)

    assert (first["count"], second["count"]) == (5, 10)
    assert five == ten


def test_the_preview_needs_the_permission_to_view_segments(db):
    user = UserFactory(is_staff=True)
    client = Client()
    client.force_login(user)
    tree = {"attribute": "plan", "op": "eq", "value": "pro"}

    refused = preview(client, tree)
    user.user_permissions.add(Permission.objects.get(codename="view_segment"))
    allowed = preview(client, tree)

    assert refused.status_code == 403
    assert allowed.status_code == 200 and allowed.json()["summary"] == "0 contacts."


def test_the_preview_shows_contacts_only_to_those_who_may_view_them(db):
    ada = ContactFactory(attributes={"plan": "pro"})
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_segment"))
    client = Client()
    client.force_login(user)
    tree = {"attribute": "plan", "op": "eq", "value": "pro"}

    without = preview(client, tree).json()
    user.user_permissions.add(Permission.objects.get(codename="view_contact"))
    client.force_login(user)  # permissions are read once per request's user
    with_them = preview(client, tree).json()

    assert (without["summary"], without["sample"]) == ("1 contact.", None)
    assert [c["email"] for c in with_them["sample"]] == [ada.email]


def test_the_preview_is_for_staff_only(db):
    client = Client()
    client.force_login(UserFactory(is_staff=False, is_superuser=True))

    response = preview(client, {})

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
    assert not response.content


def test_the_preview_refuses_a_post_without_the_csrf_token(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    refused = preview(client, {})
    client.get(reverse("admin:contacts_segment_add"))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    allowed = preview(client, {}, csrfmiddlewaretoken=token)

    assert refused.status_code == 403
    assert allowed.status_code == 200


def test_the_preview_ignores_a_segment_id_that_is_no_number(admin_client):
    response = preview(admin_client, {}, segment="²")

    assert response.status_code == 200
    assert response.json()["summary"] == "0 contacts."


def test_the_preview_takes_only_get_and_post(admin_client):
    assert admin_client.put(reverse(PREVIEW)).status_code == 405


# --- A count that takes too long -----------------------------------------------------


def hold_contacts_locked(*, release_when_waiting_for):
    """Lock the contacts table from another connection, as a long write
    would, until a query of the preview whose text contains
    matches the pattern `release_when_waiting_for` waits for it (or until
    `release` is set)."""
    locked, release = threading.Event(), threading.Event()

    def holder():
        from django.db import connection as own

        try:
            with transaction.atomic(), own.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {Contact._meta.db_table} IN ACCESS EXCLUSIVE MODE")
                locked.set()
                deadline = time.monotonic() + 30
                while not release.is_set() and time.monotonic() < deadline:
                    # Cleared each time: a transaction otherwise keeps its first look.
                    cursor.execute("SELECT pg_stat_clear_snapshot()")
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database() AND query ~ %s",
                        [release_when_waiting_for],
                    )
                    if release_when_waiting_for and cursor.fetchone()[0]:
                        break
                    time.sleep(0.02)
        finally:
            own.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert locked.wait(10), "the contacts table could not be locked"
    return thread, release


@pytest.mark.postgresql(reason="PostgreSQL's statement timeout")
@pytest.mark.django_db(transaction=True)
def test_a_count_that_times_out_says_so_and_shows_the_sample(admin_client, monkeypatch):
    # Given contacts that match, and a count that cannot finish in time
    ada = ContactFactory(attributes={"plan": "pro"})
    monkeypatch.setattr("contacts.selectors.PREVIEW_TIMEOUT_MS", 500)
    # (the table is locked until the sample, looked for once the count gave up, waits)
    thread, release = hold_contacts_locked(release_when_waiting_for="LIMIT 10$")

    # When the preview is asked for
    try:
        answer = preview(admin_client, {"attribute": "plan", "op": "eq", "value": "pro"}).json()
    finally:
        release.set()
        thread.join()

    # Then the count is given up and the sample shown
    assert (answer["count"], answer["summary"]) == (None, "Count timed out, sample shown.")
    assert [contact["email"] for contact in answer["sample"]] == [ada.email]


@pytest.mark.postgresql(reason="PostgreSQL's statement timeout")
@pytest.mark.django_db(transaction=True)
def test_a_preview_that_times_out_altogether_answers_without_a_count(admin_client, monkeypatch):
    ContactFactory(attributes={"plan": "pro"})
    monkeypatch.setattr("contacts.selectors.PREVIEW_TIMEOUT_MS", 100)
    thread, release = hold_contacts_locked(release_when_waiting_for="")

    try:
        response = preview(admin_client, {"attribute": "plan", "op": "eq", "value": "pro"})
    finally:
        release.set()
        thread.join()

    assert response.status_code == 200
    assert response.json() == {
        "count": None,
        "count_capped": False,
        "summary": "Count timed out.",
        "warnings": [],
        "sample": None,
    }


SLOW_SQLITE_COUNT = (
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 50000000) "
    "SELECT count(*) FROM n"
)


def _count(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite's interrupt (PostgreSQL's timeout is above)"
)
def test_on_sqlite_a_preview_query_that_runs_out_of_time_is_interrupted_and_reported(db):
    from contacts.selectors import TIMED_OUT, _Budget

    # Given a preview's budget of 50 ms a query, within a transaction as the preview runs
    with transaction.atomic():
        budget = _Budget(50)
        started = time.monotonic()

        # When a query that would take seconds runs under it, then a quick one
        slow = budget.run(lambda: _count(SLOW_SQLITE_COUNT))
        took = time.monotonic() - started
        quick = budget.run(lambda: _count("SELECT count(*) FROM contacts_contact"))

    # Then the slow one is given up in about its time, the quick one answers
    assert slow is TIMED_OUT
    assert took < 2
    assert quick == 0
    # and the connection is left without the interrupt
    assert _count("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                  "WHERE x < 200000) SELECT count(*) FROM n") == 200000  # fmt: skip
