"""The condition grammar: SQL for segments, Python for one contact, same answers."""

from datetime import timedelta

import pytest
from django.utils import timezone

from contacts.conditions import ConditionError, attribute_matches, compile_conditions, parse_value
from contacts.models import Contact
from tests.factories import ContactFactory, EventFactory, ListMembershipFactory

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
]


@pytest.mark.parametrize(("attributes", "path", "op", "value", "expected"), CASES)
def test_attribute_matches_in_python(attributes, path, op, value, expected):
    assert attribute_matches(attributes, path, op, value) is expected


@pytest.mark.django_db
@pytest.mark.parametrize(("attributes", "path", "op", "value", "expected"), CASES)
def test_the_same_condition_in_sql_agrees(attributes, path, op, value, expected):
    contact = ContactFactory(attributes=attributes)
    q = compile_conditions({"attribute": path, "op": op, "value": value})

    assert Contact.objects.filter(q, pk=contact.pk).exists() is expected


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
