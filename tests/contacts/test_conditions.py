"""The condition grammar: SQL for segments, Python for one contact, same answers."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from contacts.conditions import (
    ConditionError,
    attribute_matches,
    compile_conditions,
    contact_matches,
    contacts_matching,
    parse_value,
)
from contacts.models import Contact
from tests.factories import ContactFactory, EventFactory, ListMembershipFactory

# "Now" for the date cases: 15 June 2026 in the site's time zone (UTC in the tests).
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)

CASES = [
    ({"plan": "pro"}, "plan", "eq", "pro", True),
    ({"plan": "free"}, "plan", "eq", "pro", False),
    ({"plan": "free"}, "plan", "ne", "pro", True),
    ({}, "plan", "ne", "pro", True),
    ({"age": 40}, "age", "gt", 30, True),
    ({"age": 30}, "age", "gt", 30, False),
    ({"age": 30}, "age", "gte", 30, True),
    ({"age": 20}, "age", "lt", 30, True),
    ({"age": 20}, "age", "lte", 19, False),
    ({"city": "Lisbon"}, "city", "contains", "lis", True),
    ({"address": {"city": "Porto"}}, "address.city", "eq", "Porto", True),
    ({"plan": "pro"}, "plan", "exists", None, True),
    ({}, "plan", "exists", None, False),
    ({}, "plan", "not_exists", None, True),
    ({"vip": True}, "vip", "eq", True, True),
    # A key holding JSON null does not exist, for both evaluators.
    ({"plan": None}, "plan", "exists", None, False),
    ({"plan": None}, "plan", "not_exists", None, True),
    ({"plan": None}, "plan", "ne", "pro", True),
    ({"address": {"city": None}}, "address.city", "exists", None, False),
    # Typed: a number is not its text, true is not 1.
    ({"age": "40"}, "age", "eq", 40, False),
    ({"age": "40"}, "age", "gt", 30, False),
    ({"age": "40"}, "age", "lt", 30, False),
    ({"age": 40.0}, "age", "eq", 40, True),
    ({"age": 2.5}, "age", "lt", 3, True),
    ({"vip": True}, "vip", "eq", 1, False),
    ({"vip": 1}, "vip", "eq", True, False),
    ({"vip": False}, "vip", "ne", True, True),
    ({"plan": "Pro"}, "plan", "eq", "pro", False),
    # Texts order by code point: "Z" comes before "a".
    ({"name": "Zoe"}, "name", "lt", "ada", True),
    ({"name": "bob"}, "name", "gt", "ada", True),
    ({"name": "ada"}, "name", "gte", "ada", True),
    ({"name": "ada"}, "name", "gt", 3, False),
    # A list, or an object, is equal to no text or number.
    ({"tags": ["pro"]}, "tags", "eq", "pro", False),
    ({"address": {"city": "Porto"}}, "address", "ne", "Porto", True),
    # in / not_in.
    ({"plan": "pro"}, "plan", "in", ["pro", "team"], True),
    ({"plan": "free"}, "plan", "in", ["pro", "team"], False),
    ({"seats": 5}, "seats", "in", [5, 10], True),
    ({"seats": "5"}, "seats", "in", [5, 10], False),
    ({"plan": "free"}, "plan", "not_in", ["pro", "team"], True),
    ({}, "plan", "not_in", ["pro"], True),
    ({"plan": "pro"}, "plan", "not_in", ["pro"], False),
    # contains: a case-insensitive substring of a text, a member of a list.
    ({"city": "LISBON"}, "city", "contains", "isb", True),
    ({"city": "Évora"}, "city", "contains", "évo", True),
    ({"city": "Lisbon"}, "city", "contains", "porto", False),
    ({"tags": ["vip", "beta"]}, "tags", "contains", "vip", True),
    ({"tags": ["vip", "beta"]}, "tags", "contains", "VIP", False),
    ({"tags": ["vip", "beta"]}, "tags", "contains", "vi", False),
    ({"tags": [1, 2]}, "tags", "contains", 2, True),
    ({"tags": [1, 2]}, "tags", "contains", "2", False),
    ({"tags": [1, 2]}, "tags", "contains", True, False),
    ({"tags": [[1], 2]}, "tags", "contains", 1, False),
    ({"tags": [{"a": 1}]}, "tags", "contains", 1, False),
    ({"age": 40}, "age", "contains", 4, False),
    ({"age": 40}, "age", "contains", "4", False),
    ({"tags": "vip,beta"}, "tags", "contains", "beta", True),
    ({"tags": ["vip"]}, "tags", "not_contains", "beta", True),
    ({}, "tags", "not_contains", "beta", True),
    ({"city": "Lisbon"}, "city", "not_contains", "LIS", False),
    ({"city": "100%_done"}, "city", "contains", "%_", True),
    ({"city": "100 done"}, "city", "contains", "%", False),
    # starts_with, case-insensitive, texts only.
    ({"email": "Ana@Example.com"}, "email", "starts_with", "ana@", True),
    ({"email": "ana@example.com"}, "email", "starts_with", "example", False),
    ({"zip": 10001}, "zip", "starts_with", "100", False),
    # Paths go through objects only, never into a list.
    ({"a": [{"b": 1}]}, "a.0.b", "exists", None, False),
    ({"a": ["x"]}, "a.0", "eq", "x", False),
    ({"a": {"0": "x"}}, "a.0", "eq", "x", True),
    ({"a": "text"}, "a.b", "exists", None, False),
    # Dates: a text beginning with YYYY-MM-DD, compared by calendar day.
    ({"signup": "2026-06-01"}, "signup", "before", "2026-06-02", True),
    ({"signup": "2026-06-02"}, "signup", "before", "2026-06-02", False),
    ({"signup": "2026-06-02T23:59:00Z"}, "signup", "after", "2026-06-01", True),
    ({"signup": "2026-06-01T23:59:00Z"}, "signup", "after", "2026-06-01", False),
    ({"signup": "2026-06-08"}, "signup", "within_last_days", 7, True),
    ({"signup": "2026-06-07"}, "signup", "within_last_days", 7, False),
    ({"signup": "2026-06-15 08:00:00 +00:00"}, "signup", "within_last_days", 0, True),
    ({"signup": "2026-06-16"}, "signup", "within_last_days", 7, False),
    ({"signup": "2026-06-07"}, "signup", "more_than_days_ago", 7, True),
    ({"signup": "2026-06-08"}, "signup", "more_than_days_ago", 7, False),
    ({"renewal": "2026-06-22"}, "renewal", "within_next_days", 7, True),
    ({"renewal": "2026-06-23"}, "renewal", "within_next_days", 7, False),
    ({"renewal": "2026-06-14"}, "renewal", "within_next_days", 7, False),
    ({"signup": "June 1st"}, "signup", "before", "2027-01-01", False),
    ({"signup": 20260601}, "signup", "before", "2027-01-01", False),
    ({"signup": None}, "signup", "before", "2027-01-01", False),
]
# Attributes every condition of the table is also tried on, both ways.
PROBES = [
    {},
    {"plan": ["pro"], "age": True, "city": 7, "tags": {"vip": 1}, "signup": ["2026-06-10"]},
    {"plan": "PRO", "age": -1, "name": "", "email": None, "zip": "10001", "renewal": "2026"},
    {"address": "Porto", "a": None, "vip": 0, "seats": 5.0, "tags": []},
]


@pytest.mark.parametrize(("attributes", "path", "op", "value", "expected"), CASES)
def test_attribute_matches_in_python(attributes, path, op, value, expected):
    assert attribute_matches(attributes, path, op, value, now=NOW) is expected


@pytest.mark.django_db
@pytest.mark.parametrize(("attributes", "path", "op", "value", "expected"), CASES)
def test_the_same_condition_in_sql_agrees(attributes, path, op, value, expected):
    contact = ContactFactory(attributes=attributes)
    q = compile_conditions({"attribute": path, "op": op, "value": value}, now=NOW)

    assert Contact.objects.filter(q, pk=contact.pk).exists() is expected


@pytest.mark.django_db
def test_every_condition_of_the_table_agrees_on_every_contact_of_the_table():
    # Given one contact per set of attributes in the table, and a few odd ones
    contacts = {}
    for attributes in [case[0] for case in CASES] + PROBES:
        key = json.dumps(attributes, sort_keys=True)
        if key not in contacts:
            contacts[key] = ContactFactory(attributes=attributes)
    ids = [c.pk for c in contacts.values()]

    for _, path, op, value, _ in CASES:
        tree = {"attribute": path, "op": op, "value": value}
        # When SQL picks the matching contacts among all of them, and Python
        # answers for each contact
        in_sql = contacts_matching(tree, ids, now=NOW)
        in_python = {c.pk for c in contacts.values() if contact_matches(tree, c, now=NOW)}

        # Then both pick the same contacts
        assert in_sql == in_python, tree


@pytest.mark.django_db
def test_a_segment_tree_combines_attributes_lists_and_events():
    pro_member = ContactFactory(attributes={"plan": "pro"})
    pro_outsider = ContactFactory(attributes={"plan": "pro"})
    free_member = ContactFactory(attributes={"plan": "free"})
    membership = ListMembershipFactory(contact=pro_member)
    ListMembershipFactory(contact=free_member, contact_list=membership.contact_list)
    EventFactory(contact=pro_member, name="purchase")
    EventFactory(
        contact=pro_outsider, name="purchase", occurred_at=timezone.now() - timedelta(days=90)
    )
    tree = {
        "all": [
            {"attribute": "plan", "op": "eq", "value": "pro"},
            {
                "any": [
                    {"list": membership.contact_list_id, "op": "member"},
                    {"event": "purchase", "op": "done", "within_days": 30},
                ]
            },
        ]
    }

    matched = set(Contact.objects.filter(compile_conditions(tree)))

    assert matched == {pro_member}


@pytest.mark.django_db
def test_not_and_not_done_invert():
    buyer = ContactFactory()
    other = ContactFactory()
    EventFactory(contact=buyer, name="purchase")

    q = compile_conditions({"not": {"event": "purchase", "op": "done"}})
    q2 = compile_conditions({"event": "purchase", "op": "not_done"})

    assert set(Contact.objects.filter(q)) == {other}
    assert set(Contact.objects.filter(q2)) == {other}


@pytest.mark.parametrize(
    "tree",
    [
        {"attribute": "plan", "op": "like", "value": 1},
        {"attribute": "a__b", "op": "eq", "value": 1},
        {"attribute": "bad key", "op": "eq", "value": 1},
        {"all": []},
        {"list": 1, "op": "in"},
        {"event": "x", "op": "sometimes"},
        {"whatever": 1},
        ["not", "an", "object"],
    ],
)
def test_malformed_trees_are_refused_with_a_reason(tree):
    with pytest.raises(ConditionError):
        compile_conditions(tree)


def test_values_typed_in_the_admin_are_read_as_json_when_they_parse():
    assert parse_value("30") == 30
    assert parse_value("true") is True
    assert parse_value('"30"') == "30"
    assert parse_value("pro") == "pro"
