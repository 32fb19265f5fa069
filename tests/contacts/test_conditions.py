"""The condition grammar: SQL for segments, Python for one contact, same answers."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.conditions import (
    ConditionError,
    attribute_matches,
    compile_conditions,
    conditions_validate,
    contact_matches,
    contacts_matching,
    parse_value,
)
from contacts.models import Contact
from tests.factories import ContactFactory, EventFactory, ListMembershipFactory, SegmentFactory

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
    ({"signup": "0001-01-01"}, "signup", "before", "0001-01-01", False),
    ({"signup": "9999-12-31"}, "signup", "after", "9999-12-31", False),
    ({"signup": "9999-12-31"}, "signup", "after", "0001-01-01", True),
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


# --- Trees: lists, segments, events and messages, both ways ------------------


@pytest.fixture
def world(db):
    """Four contacts with lists, purchases and messages, and three segments."""
    from journeys.models import Enrollment
    from messaging.models import Engagement, Message
    from tests.factories import (
        ContactListFactory,
        EnrollmentFactory,
        JourneyFactory,
        MessageFactory,
        SegmentFactory,
        TemplateFactory,
    )

    now = timezone.now()
    ago = lambda days: now - timedelta(days=days)  # noqa: E731
    ada = ContactFactory(email="ada@example.com", attributes={"plan": "pro"})
    bo = ContactFactory(email="bo@example.com", attributes={"plan": "free"})
    cy = ContactFactory(email="cy@example.com", attributes={"plan": "pro", "age": 30})
    di = ContactFactory(email="di@example.com", attributes={})
    newsletter = ContactListFactory(name="Newsletter")
    ListMembershipFactory(contact=ada, contact_list=newsletter)
    ListMembershipFactory(contact=di, contact_list=newsletter)
    for days, data in [(1, {"total": 80, "sku": "A"}), (3, {"total": 20}), (9, {"total": 120})]:
        EventFactory(contact=ada, name="purchase", occurred_at=ago(days), data=data)
    EventFactory(contact=bo, name="purchase", occurred_at=ago(60), data={"total": 500})
    EventFactory(contact=cy, name="purchase_refunded", occurred_at=ago(1), data={"total": 80})

    welcome, promo = TemplateFactory(name="Welcome"), TemplateFactory(name="Promo")
    onboarding = JourneyFactory(name="Onboarding")
    enrollment = EnrollmentFactory(
        journey=onboarding, contact=ada, state=Enrollment.State.COMPLETED
    )
    sent = {"status": Message.Status.SENT}
    to_ada = MessageFactory(
        contact=ada, template=welcome, sent_at=ago(5), origin=Message.Origin.JOURNEY,
        origin_id=enrollment.pk, **sent,
    )  # fmt: skip
    to_bo = MessageFactory(contact=bo, template=promo, sent_at=ago(45), **sent)
    test_send = MessageFactory(contact=cy, template=welcome, sent_at=ago(1), is_test=True, **sent)
    MessageFactory(contact=di, template=welcome, status=Message.Status.FAILED)
    for message, kind, days in [
        (to_ada, "opened", 2),
        (to_bo, "opened", 44),
        (to_bo, "clicked", 40),
        (test_send, "clicked", 1),
    ]:
        Engagement.objects.create(
            message=message, contact=message.contact, kind=kind,
            source=Engagement.Source.TRACKING, occurred_at=ago(days),
        )  # fmt: skip

    pro = SegmentFactory(name="Pro", conditions={"attribute": "plan", "op": "eq", "value": "pro"})
    pro_buyers = SegmentFactory(
        name="Pro buyers",
        conditions={
            "all": [{"segment": pro.pk, "op": "member"}, {"event": "purchase", "op": "done"}]
        },
    )
    everyone = SegmentFactory(name="Everyone", conditions={})
    return {
        "now": now,
        "contacts": {c.email.split("@")[0]: c for c in (ada, bo, cy, di)},
        "ids": {
            "newsletter": newsletter.pk, "pro": pro.pk, "pro_buyers": pro_buyers.pk,
            "everyone": everyone.pk, "welcome": welcome.pk, "promo": promo.pk,
            "message_type": promo.message_type_id, "onboarding": onboarding.pk,
        },
    }  # fmt: skip


TREE_CASES = [
    ({"list": "newsletter", "op": "member"}, {"ada", "di"}),
    ({"list": "newsletter", "op": "not_member"}, {"bo", "cy"}),
    ({"segment": "pro", "op": "member"}, {"ada", "cy"}),
    ({"segment": "pro_buyers", "op": "member"}, {"ada"}),
    ({"segment": "pro_buyers", "op": "not_member"}, {"bo", "cy", "di"}),
    ({"segment": "everyone", "op": "member"}, {"ada", "bo", "cy", "di"}),
    ({"not": {"segment": "everyone", "op": "member"}}, set()),
    ({"event": "purchase", "op": "done"}, {"ada", "bo"}),
    ({"event": "purchase", "op": "not_done"}, {"cy", "di"}),
    ({"event": "purchase", "op": "done", "within_days": 30}, {"ada"}),
    ({"event": "purchase", "op": "done", "at_least": 3}, {"ada"}),
    ({"event": "purchase", "op": "done", "at_least": 3, "within_days": 5}, set()),
    ({"event": "purchase", "op": "done", "at_least": 2, "within_days": 5}, {"ada"}),
    ({"event": "purchase", "op": "not_done", "at_least": 2}, {"bo", "cy", "di"}),
    (
        {
            "event": "purchase",
            "op": "done",
            "where": [{"field": "total", "op": "gte", "value": 100}],
        },
        {"ada", "bo"},
    ),
    (
        {
            "event": "purchase",
            "op": "done",
            "at_least": 2,
            "where": [{"field": "total", "op": "gte", "value": 50}],
        },
        {"ada"},
    ),
    (
        {
            "event": "purchase",
            "op": "done",
            "where": [
                {"field": "total", "op": "eq", "value": 80},
                {"field": "sku", "op": "exists"},
            ],
        },
        {"ada"},
    ),
    ({"message": "received", "op": "done"}, {"ada", "bo"}),
    ({"message": "received", "op": "done", "within_days": 30}, {"ada"}),
    ({"message": "received", "op": "done", "template": "promo"}, {"bo"}),
    ({"message": "received", "op": "done", "message_type": "message_type"}, {"bo"}),
    ({"message": "received", "op": "not_done"}, {"cy", "di"}),
    ({"message": "opened", "op": "done"}, {"ada", "bo"}),
    ({"message": "opened", "op": "done", "within_days": 7}, {"ada"}),
    ({"message": "clicked", "op": "done"}, {"bo"}),
    ({"message": "clicked", "op": "done", "within_days": 30}, set()),
    ({"message": "opened", "op": "done", "journey": "onboarding"}, {"ada"}),
    ({"message": "clicked", "op": "not_done", "journey": "onboarding"}, {"ada", "bo", "cy", "di"}),
    (
        {
            "all": [
                {"attribute": "plan", "op": "eq", "value": "pro"},
                {"not": {"message": "opened", "op": "done", "within_days": 7}},
            ]
        },
        {"cy"},
    ),
    (
        {
            "any": [
                {"attribute": "age", "op": "gte", "value": 30},
                {
                    "all": [
                        {"list": "newsletter", "op": "member"},
                        {"event": "purchase", "op": "done"},
                    ]
                },
            ]
        },
        {"ada", "cy"},
    ),
]


def _with_ids(tree, ids):
    """The tree with the world's names ("newsletter") replaced by their ids."""
    if isinstance(tree, list):
        return [_with_ids(item, ids) for item in tree]
    if not isinstance(tree, dict):
        return tree
    named = {"list", "segment", "template", "message_type", "journey"}
    return {
        key: ids[value] if key in named and isinstance(value, str) else _with_ids(value, ids)
        for key, value in tree.items()
    }


@pytest.mark.parametrize(("tree", "expected"), TREE_CASES)
def test_both_evaluators_agree_on_lists_segments_events_and_messages(world, tree, expected):
    # Given the world's contacts and a tree naming its lists, segments, templates, journeys
    tree = _with_ids(tree, world["ids"])
    contacts = world["contacts"]
    names = {c.pk: name for name, c in contacts.items()}

    # When SQL picks the matching contacts, and Python answers for each one
    in_sql = {names[pk] for pk in contacts_matching(tree, names, now=world["now"])}
    in_python = {n for n, c in contacts.items() if contact_matches(tree, c, now=world["now"])}

    # Then both give the expected contacts
    assert (in_sql, in_python) == (expected, expected)


# --- Validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tree", "reason"),
    [
        ({"attribute": "plan", "op": "like", "value": 1}, "unknown attribute operator 'like'"),
        ({"attribute": "age", "op": "gt", "value": True}, "'gt' compares with a number or a text"),
        ({"attribute": "plan", "op": "eq", "value": None}, "use 'exists' / 'not_exists'"),
        ({"attribute": "plan", "op": "in", "value": "pro"}, "'in' takes a non-empty list"),
        ({"attribute": "plan", "op": "exists", "value": 1}, "'exists' takes no value"),
        ({"attribute": "d", "op": "before", "value": "01/02/2026"}, "a date written YYYY-MM-DD"),
        ({"attribute": "d", "op": "before", "value": "2026-02-30"}, "a date written YYYY-MM-DD"),
        ({"attribute": "d", "op": "within_last_days", "value": "7"}, "a whole number of days"),
        ({"attribute": "d", "op": "within_next_days", "value": -1}, "a whole number of days"),
        ({"attribute": "d", "op": "within_last_days", "value": 10**9}, "from 0 to 36500"),
        ({"event": "buy", "op": "done", "within_days": 10**9}, "from 1 to 36500"),
        ({"attribute": "tags", "op": "contains", "value": ["a"]}, "'contains' looks for"),
        ({"attribute": "a__b", "op": "eq", "value": 1}, "is not an attribute path"),
        ({"any": [{"not": {"attribute": "p", "op": "zz"}}]}, "any[0].not: unknown attribute"),
        ({"event": "buy", "op": "done", "within_days": 0}, "'within_days' takes a whole number"),
        ({"event": "buy", "op": "done", "at_least": 0}, "'at_least' takes a whole number"),
        (
            {"event": "buy", "op": "done", "where": [{"field": "total", "op": "gt"}]},
            "where[0]: 'gt' compares with a number",
        ),
        ({"list": "Newsletter", "op": "member"}, "a list is named by its id"),
        ({"segment": 1, "op": "in"}, "segment conditions take op 'member' or 'not_member'"),
        ({"message": "bounced", "op": "done"}, "look for received, opened, clicked"),
        ({"message": "opened", "op": "done", "campaign": 1}, "not 'campaign'"),
        ({"attribute": "plan", "op": "eq", "vlaue": "pro"}, "not 'vlaue'"),
        ({"event": "buy", "op": "done", "within_day": 7}, "event conditions take"),
        ({"list": 1, "op": "member", "within_days": 7}, "not 'within_days'"),
        (
            {"event": "buy", "op": "done", "where": [{"field": "t", "op": "eq", "val": 1}]},
            "where[0]: tests on event data take",
        ),
        ({"all": [{"list": 1, "op": "member"}], "any": []}, "'all' stands alone"),
    ],
)
def test_a_malformed_tree_is_refused_with_its_reason(tree, reason):
    with pytest.raises(ConditionError) as refused:
        compile_conditions(tree)

    assert reason in str(refused.value)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tree", "reason"),
    [
        ({"list": 999999, "op": "member"}, "there is no list with id 999999"),
        ({"segment": 999999, "op": "member"}, "there is no segment with id 999999"),
        ({"message": "opened", "op": "done", "template": 999999}, "no template with id 999999"),
        (
            {"message": "opened", "op": "done", "message_type": 999999},
            "no message type with id 999999",
        ),
        ({"message": "opened", "op": "done", "journey": 999999}, "no journey with id 999999"),
    ],
)
def test_a_tree_naming_what_does_not_exist_is_refused(tree, reason):
    with pytest.raises(ConditionError) as refused:
        conditions_validate(tree)

    assert reason in str(refused.value)


@pytest.mark.django_db
def test_a_segment_cannot_contain_itself_through_another():
    # Given "Pro" and "Pro buyers", which contains "Pro"
    pro = SegmentFactory(name="Pro")
    buyers = SegmentFactory(name="Pro buyers", conditions={"segment": pro.pk, "op": "member"})

    # When "Pro" is changed to contain "Pro buyers"
    pro.conditions = {"any": [{"segment": buyers.pk, "op": "not_member"}]}
    with pytest.raises(ValidationError) as refused:
        pro.full_clean()

    # Then it is refused, naming the loop, and nothing is stored
    assert "a segment cannot contain itself: Pro → Pro buyers → Pro" in str(refused.value)
    pro.refresh_from_db()
    assert pro.conditions == {"attribute": "plan", "op": "eq", "value": "pro"}


@pytest.mark.django_db
def test_a_segment_is_refused_when_its_conditions_name_a_missing_list():
    segment = SegmentFactory.build(name="Readers", conditions={"list": 999999, "op": "member"})

    with pytest.raises(ValidationError) as refused:
        segment.full_clean()

    assert refused.value.message_dict == {"conditions": ["there is no list with id 999999"]}


@pytest.mark.django_db
def test_a_valid_segment_naming_others_passes_validation():
    pro = SegmentFactory(name="Pro")
    newsletter = ListMembershipFactory().contact_list
    segment = SegmentFactory.build(
        name="Pro readers",
        conditions={
            "all": [
                {"segment": pro.pk, "op": "member"},
                {"list": newsletter.pk, "op": "member"},
                {"attribute": "signup", "op": "within_last_days", "value": 30},
            ]
        },
    )

    segment.full_clean()  # no error


# --- Cost ---------------------------------------------------------------------


@pytest.mark.django_db
def test_matching_a_batch_costs_the_same_for_n_or_2n_contacts(world):
    tree = _with_ids(
        {
            "all": [
                {"segment": "pro", "op": "member"},
                {"list": "newsletter", "op": "member"},
                {"event": "purchase", "op": "done", "at_least": 2, "within_days": 30},
                {"message": "opened", "op": "done", "journey": "onboarding"},
            ]
        },
        world["ids"],
    )

    def queries(count):
        ids = [c.pk for c in ContactFactory.create_batch(count)]
        with CaptureQueriesContext(connection) as captured:
            contacts_matching(tree, ids)
        return len(captured)

    assert queries(5) == queries(10)
    ada = world["contacts"]["ada"]
    assert contacts_matching(tree, [ada.pk]) == {ada.pk}


@pytest.mark.django_db
def test_one_contact_costs_one_query_for_all_its_non_attribute_tests(
    world, django_assert_num_queries
):
    ada = world["contacts"]["ada"]
    tree = _with_ids(
        {
            "all": [
                {"attribute": "plan", "op": "eq", "value": "pro"},
                {"list": "newsletter", "op": "member"},
                {"event": "purchase", "op": "done"},
                {"message": "opened", "op": "done"},
            ]
        },
        world["ids"],
    )

    with django_assert_num_queries(1):
        assert contact_matches(tree, ada) is True
    with django_assert_num_queries(0):
        assert contact_matches({"attribute": "plan", "op": "eq", "value": "pro"}, ada) is True


@pytest.mark.django_db
def test_an_empty_condition_inside_a_tree_matches_everyone_both_ways():
    contact = ContactFactory(attributes={"plan": "pro"})
    tree = {"all": [{}, {"attribute": "plan", "op": "eq", "value": "pro"}]}

    assert contacts_matching(tree, [contact.pk]) == {contact.pk}
    assert contact_matches(tree, contact) is True
    assert contacts_matching({"any": [{"not": {"all": [{}]}}]}, [contact.pk]) == set()


# --- SQLite (make run) ----------------------------------------------------------


@pytest.fixture
def sqlite(db):
    """An in-memory SQLite database, as `make run` uses, with a contacts table:
    a connection of its own, outside the tests' PostgreSQL one."""
    from django.db.backends.sqlite3.base import DatabaseWrapper
    from django.db.utils import ConnectionHandler

    settings = ConnectionHandler().configure_settings(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )["default"]
    sqlite = DatabaseWrapper(settings, alias="conditions_sqlite")
    with sqlite.schema_editor(atomic=False) as editor:
        editor.create_model(Contact)
    yield sqlite
    sqlite.close()


def test_on_sqlite_the_table_gets_the_same_answers(sqlite):
    # Given one contact per set of attributes of the table, stored in SQLite
    everyone = [case[0] for case in CASES] + PROBES
    with sqlite.cursor() as cursor:
        for pk, attributes in enumerate(everyone, start=1):
            cursor.execute(
                "INSERT INTO contacts_contact (id, email, phone, timezone, locale, attributes,"
                " blocklisted, created_at, updated_at) VALUES (%s, %s, '', '', '', %s, 0,"
                " '2026-01-01', '2026-01-01')",
                [pk, f"c{pk}@example.com", json.dumps(attributes)],
            )

    def in_sqlite(tree):
        query = Contact.objects.filter(compile_conditions(tree, now=NOW)).values("pk").query
        sql, params = query.get_compiler(connection=sqlite).as_sql()
        with sqlite.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}

    for _, path, op, value, _ in CASES:
        # When SQLite picks the matching contacts, Then Python agrees, and
        # "not" picks the others
        tree = {"attribute": path, "op": op, "value": value}
        in_python = {
            pk
            for pk, attributes in enumerate(everyone, start=1)
            if attribute_matches(attributes, path, op, value, now=NOW)
        }
        assert in_sqlite(tree) == in_python, tree
        assert in_sqlite({"not": tree}) == set(range(1, len(everyone) + 1)) - in_python, tree
