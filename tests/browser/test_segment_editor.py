"""Building a segment in the browser from rules, with the live count beside them."""

import json
import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from contacts.models import Segment
from tests.factories import (
    ContactFactory,
    ContactListFactory,
    EventFactory,
    JourneyFactory,
    ListMembershipFactory,
    SegmentFactory,
    TemplateFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


def rules(page):
    return page.locator(".condition-editor-rules")


def root_group(page):
    return rules(page).locator(":scope > .condition-editor-group")


def add_rule(page, label):
    """Add a rule to the outermost group; returns it (and only it, whatever is added next)."""
    children = root_group(page).locator(":scope > [data-children] > *")
    added = children.nth(children.count())
    root_group(page).locator(":scope > .condition-editor-adds").get_by_role(
        "button", name=label
    ).click()
    expect(added).to_be_visible()
    return added


def count(page):
    return page.locator(".condition-editor-preview [data-count]")


@pytest.fixture
def newsletter(db):
    """Three pro contacts, two of them on the newsletter list, and two free ones."""
    newsletter = ContactListFactory(name="Newsletter")
    pros = ContactFactory.create_batch(3, attributes={"plan": "pro"})
    ContactFactory.create_batch(2, attributes={"plan": "free"})
    for contact in pros[:2]:
        ListMembershipFactory(contact_list=newsletter, contact=contact)
    return newsletter


def test_a_segment_is_built_from_two_rules_without_touching_json(
    admin_page, live_server, newsletter
):
    # Given the page to add a segment
    admin_page.goto(f"{live_server.url}{reverse('admin:contacts_segment_add')}")
    expect(admin_page.locator(".condition-editor-json")).not_to_have_attribute("open", "")
    expect(count(admin_page)).to_have_text("5 contacts.")
    admin_page.get_by_label("Name").fill("Pro readers")

    # When an attribute rule and a list rule are added
    attribute = add_rule(admin_page, "+ Attribute rule")
    attribute.get_by_label("Attribute").fill("plan")
    expect(attribute.get_by_label("Operator")).to_have_value("eq")
    attribute.get_by_label("Value").fill("pro")
    expect(count(admin_page)).to_have_text("3 contacts.")
    member = add_rule(admin_page, "+ List rule")
    member.get_by_label("List", exact=True).select_option(label="Newsletter")

    # Then the count follows each rule, with the matching contacts listed
    expect(count(admin_page)).to_have_text("2 contacts.")
    expect(admin_page.locator(".condition-editor-sample li")).to_have_count(2)

    # And saving stores the rules as a condition tree
    admin_page.get_by_role("button", name="Save", exact=True).click()
    expect(admin_page.locator(".messagelist .success")).to_contain_text("was added successfully")
    segment = Segment.objects.get(name="Pro readers")
    assert segment.conditions == {
        "all": [
            {"attribute": "plan", "op": "eq", "value": "pro"},
            {"list": newsletter.pk, "op": "member"},
        ]
    }

    # And reopening it shows the same rules and the same count
    admin_page.goto(
        f"{live_server.url}{reverse('admin:contacts_segment_change', args=[segment.pk])}"
    )
    attribute = rules(admin_page).locator('[data-kind="attribute"]')
    expect(attribute.get_by_label("Attribute")).to_have_value("plan")
    expect(attribute.get_by_label("Operator")).to_have_value("eq")
    expect(attribute.get_by_label("Value")).to_have_value("pro")
    member = rules(admin_page).locator('[data-kind="list"]')
    expect(member.get_by_label("List membership")).to_have_value("member")
    expect(member.get_by_label("List", exact=True)).to_have_value(str(newsletter.pk))
    expect(count(admin_page)).to_have_text("2 contacts.")


def test_an_event_rule_with_a_data_filter_and_a_group(admin_page, live_server, newsletter):
    big_spender = ContactFactory(attributes={"plan": "free"})
    EventFactory(contact=big_spender, name="purchase", data={"total": 80})
    EventFactory(name="purchase", data={"total": 20})
    admin_page.goto(f"{live_server.url}{reverse('admin:contacts_segment_add')}")
    admin_page.get_by_label("Name").fill("Big spenders or pros")

    root_group(admin_page).locator(":scope > .condition-editor-group-head").get_by_label(
        "Match"
    ).select_option("any")
    event = add_rule(admin_page, "+ Event rule")
    event.get_by_label("Event name").fill("purchase")
    event.get_by_role("button", name="+ Data filter").click()
    data = event.locator("[data-filter]")
    data.get_by_label("Data field").fill("total")
    data.get_by_label("Type").select_option("number")
    data.get_by_label("Operator").select_option("gte")
    data.get_by_label("Value").fill("50")
    expect(count(admin_page)).to_have_text("1 contact.")
    attribute = add_rule(admin_page, "+ Attribute rule")
    attribute.get_by_label("Attribute").fill("plan")
    attribute.get_by_label("Operator").select_option("in")
    attribute.get_by_label("Values").fill("pro, team")
    expect(count(admin_page)).to_have_text("4 contacts.")
    admin_page.get_by_role("button", name="Save", exact=True).click()

    expect(admin_page.locator(".messagelist .success")).to_contain_text("was added successfully")
    assert Segment.objects.get(name="Big spenders or pros").conditions == {
        "any": [
            {
                "event": "purchase",
                "op": "done",
                "where": [{"field": "total", "op": "gte", "value": 50}],
            },
            {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
        ]
    }


def test_a_misspelt_attribute_warns_and_a_refused_rule_is_marked(
    admin_page, live_server, newsletter
):
    admin_page.goto(f"{live_server.url}{reverse('admin:contacts_segment_add')}")

    attribute = add_rule(admin_page, "+ Attribute rule")
    attribute.get_by_label("Attribute").fill("plann")
    attribute.get_by_label("Value").fill("pro")
    expect(count(admin_page)).to_have_text("0 contacts.")
    expect(admin_page.locator(".condition-editor-warnings")).to_have_text(
        "No contact has attribute “plann”."
    )

    event = add_rule(admin_page, "+ Event rule")
    expect(admin_page.locator(".condition-editor-preview [data-error]")).to_have_text(
        'all[1]: name the event, e.g. {"event": "purchase", ...}'
    )
    expect(event).to_have_class("condition-editor-rule condition-editor-invalid")
    expect(attribute).not_to_have_class("condition-editor-rule condition-editor-invalid")


def test_editing_the_json_redraws_the_rules(admin_page, live_server, newsletter):
    admin_page.goto(f"{live_server.url}{reverse('admin:contacts_segment_add')}")
    admin_page.locator(".condition-editor-json summary").click()
    box = admin_page.locator("textarea[name=conditions]")

    box.fill('{"list": ')
    expect(admin_page.locator(".condition-editor-note")).to_contain_text("The JSON is not valid")
    box.fill(json.dumps({"list": newsletter.pk, "op": "not_member"}))

    member = rules(admin_page).locator('[data-kind="list"]')
    expect(member.get_by_label("List membership")).to_have_value("not_member")
    expect(admin_page.locator(".condition-editor-note")).to_be_hidden()
    expect(count(admin_page)).to_have_text("3 contacts.")
    member.get_by_label("List membership").select_option("member")
    expect(count(admin_page)).to_have_text("2 contacts.")
    assert json.loads(box.input_value()) == {"list": newsletter.pk, "op": "member"}


def test_rules_of_every_kind_are_saved_again_as_they_were(admin_page, live_server, newsletter):
    # Given a segment using every kind of rule and group the editor draws
    churned = SegmentFactory(
        name="Churned", conditions={"attribute": "plan", "op": "eq", "value": "x"}
    )
    template = TemplateFactory(name="Welcome")
    journey = JourneyFactory(name="Onboarding")
    tree = {
        "all": [
            {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
            {"attribute": "zip", "op": "eq", "value": "1000"},
            {"attribute": "age", "op": "gte", "value": 30},
            {"attribute": "vip", "op": "eq", "value": True},
            {"attribute": "renewal_date", "op": "within_next_days", "value": 14},
            {"attribute": "signed_up", "op": "before", "value": "2026-01-01"},
            {"attribute": "address.city", "op": "exists"},
            {
                "event": "purchase",
                "op": "done",
                "at_least": 3,
                "within_days": 90,
                "where": [{"field": "total", "op": "gte", "value": 50}],
            },
            {"list": newsletter.pk, "op": "member"},
            {"segment": churned.pk, "op": "not_member"},
            {
                "message": "opened",
                "op": "not_done",
                "template": template.pk,
                "message_type": template.message_type_id,
                "journey": journey.pk,
                "within_days": 30,
            },
            {
                "any": [
                    {"not": {"all": [{"event": "cart_abandoned", "op": "not_done"}]}},
                    {"not": {"attribute": "plan", "op": "exists"}},
                ]
            },
        ]
    }
    segment = SegmentFactory(name="Everything", conditions=tree)
    admin_page.goto(
        f"{live_server.url}{reverse('admin:contacts_segment_change', args=[segment.pk])}"
    )

    # When the rules are touched (which writes them back as JSON) and saved
    match = (
        root_group(admin_page)
        .locator(":scope > .condition-editor-group-head")
        .get_by_label("Match")
    )
    match.select_option("any")
    expect(admin_page.locator("textarea[name=conditions]")).to_have_value(re.compile('"any"'))
    match.select_option("all")
    admin_page.get_by_role("button", name="Save", exact=True).click()

    # Then the condition is the one the segment had
    expect(admin_page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    segment.refresh_from_db()
    assert segment.conditions == tree


def test_a_condition_the_rules_cannot_draw_is_left_to_the_json(admin_page, live_server, db):
    tree = {"attribute": "plan", "op": "in", "value": [1, "one"]}
    segment = SegmentFactory(name="Mixed", conditions=tree)

    admin_page.goto(
        f"{live_server.url}{reverse('admin:contacts_segment_change', args=[segment.pk])}"
    )

    expect(admin_page.locator(".condition-editor-note")).to_have_text(
        "These rules use a list of values of different kinds, which only the JSON below can show."
    )
    expect(rules(admin_page)).to_be_hidden()
    expect(admin_page.locator("textarea[name=conditions]")).to_be_visible()
    expect(count(admin_page)).to_have_text("0 contacts.")
    admin_page.get_by_role("button", name="Save", exact=True).click()
    expect(admin_page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    segment.refresh_from_db()
    assert segment.conditions == tree
