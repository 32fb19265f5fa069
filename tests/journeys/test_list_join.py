"""Journeys that start when a contact joins a list: through the API, the
subscriptions API and the admin, set-based, only for new members."""

import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.models import ListMembership
from contacts.signals import list_members_joined
from journeys.models import Enrollment, Journey, JourneyTrigger
from journeys.services.editing import JourneyStateError, journey_set_state
from tests.factories import (
    ContactFactory,
    ContactListFactory,
    JourneyFactory,
    ListMembershipFactory,
    SendMessageStepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SUBSCRIBE = "/api/lists/subscribe"


@pytest.fixture
def newsletter():
    return ContactListFactory(name="Newsletter")


@pytest.fixture
def welcome_readers(newsletter):
    journey = JourneyFactory(
        name="Welcome, readers",
        trigger_type=JourneyTrigger.Kind.LIST_JOIN,
        trigger_event_name="",
        trigger_list=newsletter,
    )
    SendMessageStepFactory(journey=journey, key="hello", position=1)
    return journey


def subscribe(api_client, newsletter, *emails):
    response = api_client.post(
        SUBSCRIBE,
        {"listId": newsletter.pk, "subscribers": [{"email": email} for email in emails]},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response


def test_contacts_who_join_the_list_through_the_api_enter_the_journey(
    api_client, newsletter, welcome_readers
):
    subscribe(api_client, newsletter, "ada@example.com", "bob@example.com")

    entered = Enrollment.objects.filter(journey=welcome_readers)
    assert sorted(entered.values_list("contact__email", flat=True)) == [
        "ada@example.com",
        "bob@example.com",
    ]
    assert {e.trigger_data["listId"] for e in entered} == {newsletter.pk}
    assert set(entered.values_list("state", flat=True)) == {Enrollment.State.ACTIVE}


def test_a_member_subscribed_again_does_not_join_again(api_client, newsletter, welcome_readers):
    member = ContactFactory(email="ada@example.com")
    ListMembershipFactory(contact=member, contact_list=newsletter)

    subscribe(api_client, newsletter, "ada@example.com")

    assert not Enrollment.objects.exists()


def test_only_live_journeys_on_that_list_start(api_client, newsletter, welcome_readers):
    other = JourneyFactory(
        name="Other list", trigger_type=JourneyTrigger.Kind.LIST_JOIN, trigger_event_name="",
        trigger_list=ContactListFactory(name="VIP"),
    )  # fmt: skip
    SendMessageStepFactory(journey=other, key="vip", position=1)
    journey_set_state(journey=welcome_readers, state=Journey.State.PAUSED)

    subscribe(api_client, newsletter, "ada@example.com")

    assert not Enrollment.objects.exists()


def test_joining_through_update_subscriptions_starts_the_journey(
    api_client, newsletter, welcome_readers
):
    ContactFactory(email="ada@example.com")

    response = api_client.post(
        "/api/users/updateSubscriptions",
        {"email": "ada@example.com", "emailListIds": [newsletter.pk]},
        format="json",
    )

    assert response.status_code == 200
    assert Enrollment.objects.get(journey=welcome_readers).contact.email == "ada@example.com"


def test_joining_in_the_admin_starts_the_journey(client, newsletter, welcome_readers):
    from tests.admin_pages import form_data

    client.force_login(UserFactory(is_superuser=True))
    ada = ContactFactory(email="ada@example.com")
    url = reverse("admin:contacts_contact_change", args=[ada.pk])
    data = form_data(client.get(url))
    prefix = "listmembership_set"
    data.update({
        f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-0-contact_list": str(newsletter.pk),
        f"{prefix}-0-contact": str(ada.pk),
    })  # fmt: skip

    response = client.post(url, data)

    assert response.status_code == 302
    assert ListMembership.objects.filter(contact=ada, contact_list=newsletter).exists()
    assert Enrollment.objects.get(journey=welcome_readers).contact == ada


def test_a_batch_of_joins_costs_the_same_for_ten_or_twenty(api_client, newsletter, welcome_readers):
    def queries(count, tag):
        emails = [f"{tag}{n}@example.com" for n in range(count)]
        with CaptureQueriesContext(connection) as captured:
            subscribe(api_client, newsletter, *emails)
        return len(captured)

    subscribe(api_client, newsletter, "first@example.com")  # the key, looked up once
    assert queries(10, "a") == queries(20, "b")
    assert Enrollment.objects.filter(journey=welcome_readers).count() == 31


def test_a_listener_that_fails_never_undoes_the_join(api_client, newsletter, caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("a listener's bug")

    list_members_joined.connect(broken, dispatch_uid="test.broken")
    try:
        with caplog.at_level(logging.ERROR):
            subscribe(api_client, newsletter, "ada@example.com")
    finally:
        list_members_joined.disconnect(dispatch_uid="test.broken")

    assert ListMembership.objects.filter(contact__email="ada@example.com").exists()
    assert "listeners failed on contacts joining list" in caplog.text


def test_a_list_join_journey_without_its_list_cannot_go_live():
    journey = JourneyFactory(
        name="No list", state=Journey.State.DRAFT, trigger_type=JourneyTrigger.Kind.LIST_JOIN,
        trigger_event_name="",
    )  # fmt: skip
    SendMessageStepFactory(journey=journey, key="hello", position=1)

    with pytest.raises(JourneyStateError, match="trigger “joins a list”: Choose the list"):
        journey_set_state(journey=journey, state=Journey.State.LIVE)
