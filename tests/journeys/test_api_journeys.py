"""GET /api/journeys and POST /api/workflows/triggerWorkflow: Iterable's contract,
and the enrollments a trigger writes (one contact at once, a whole list by a worker)."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from contacts.models import Contact
from journeys.models import Enrollment, Journey, JourneyTrigger
from journeys.services.entry import journeys_enroll_list
from tests.factories import (
    ContactFactory,
    ContactListFactory,
    EnrollmentFactory,
    JourneyFactory,
    ListMembershipFactory,
    SendMessageStepFactory,
    UserFactory,
)

JOURNEYS = "/api/journeys"
TRIGGER = "/api/workflows/triggerWorkflow"


def envelope(response):
    body = response.json()
    assert set(body) == {"msg", "code", "params"}
    return body


def journey_with_a_step(**fields):
    """A journey the API may start (its trigger: "The API starts it"), with one step."""
    fields.setdefault("trigger_type", JourneyTrigger.Kind.API)
    journey = JourneyFactory(**fields)
    SendMessageStepFactory(journey=journey, position=1)
    return journey


def list_of(size, **fields):
    contact_list = ContactListFactory(**fields)
    for _ in range(size):
        ListMembershipFactory(contact_list=contact_list)
    return contact_list


# --- GET /api/journeys ---------------------------------------------------------


def test_journeys_lists_each_journey_in_iterables_shape(api_client, db):
    creator = UserFactory(username="maya", email="maya@example.com")
    journey = JourneyFactory(
        name="Welcome series",
        description="New signups",
        trigger_event_name="signed_up",
        created_by=creator,
    )
    first = SendMessageStepFactory(journey=journey, position=1)
    SendMessageStepFactory(journey=journey, position=2)
    Journey.objects.filter(pk=journey.pk).update(
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        updated_at=datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC),
    )

    response = api_client.get(JOURNEYS)

    assert response.status_code == 200
    assert response.json() == {
        "journeys": [
            {
                "id": journey.pk,
                "name": "Welcome series",
                "description": "New signups",
                "state": "Running",
                "enabled": True,
                "isArchived": False,
                "journeyType": "Published",
                "createdAt": 1767323045000,
                "updatedAt": 1770091506000,
                "creatorUserId": "maya@example.com",
                "triggerEventNames": ["signed_up"],
                "startTileId": first.pk,
                "lifetimeLimit": 1,
                "simultaneousLimit": 1,
            }
        ],
        "totalJourneysCount": 1,
    }


def test_keys_without_a_value_are_left_out(api_client, db):
    JourneyFactory(state="draft", trigger_event_name="", reentry="after_exit")

    (details,) = api_client.get(JOURNEYS).json()["journeys"]

    assert details["state"] == "Draft"
    assert (details["enabled"], details["journeyType"]) == (False, "Draft")
    assert details["triggerEventNames"] == []
    for absent in ("description", "creatorUserId", "startTileId", "lifetimeLimit"):
        assert absent not in details


def test_archived_journeys_are_listed_only_when_asked_for(api_client, db):
    live = JourneyFactory(name="live")
    draft = JourneyFactory(name="draft", state="draft")
    paused = JourneyFactory(name="paused", state="paused")
    archived = JourneyFactory(name="archived", state="archived")

    default = api_client.get(JOURNEYS).json()
    only_archived = api_client.get(JOURNEYS, {"state": "Archived"}).json()
    two_states = api_client.get(f"{JOURNEYS}?state=Draft&state=Paused").json()

    assert [j["id"] for j in default["journeys"]] == [live.pk, draft.pk, paused.pk]
    assert default["totalJourneysCount"] == 3
    assert [(j["id"], j["isArchived"]) for j in only_archived["journeys"]] == [(archived.pk, True)]
    assert [j["id"] for j in two_states["journeys"]] == [draft.pk, paused.pk]


def test_journeys_come_a_page_at_a_time_with_links_to_the_neighbours(api_client, db):
    ids = [JourneyFactory().pk for _ in range(5)]

    response = api_client.get(JOURNEYS, {"page": 2, "pageSize": 2})

    body = response.json()
    assert [j["id"] for j in body["journeys"]] == ids[2:4]
    assert body["totalJourneysCount"] == 5
    assert body["previousPageUrl"] == "http://testserver/api/journeys?page=1&pageSize=2"
    assert body["nextPageUrl"] == "http://testserver/api/journeys?page=3&pageSize=2"
    last = api_client.get(JOURNEYS, {"page": 3, "pageSize": 2}).json()
    assert [j["id"] for j in last["journeys"]] == ids[4:]
    assert "nextPageUrl" not in last
    assert "previousPageUrl" not in api_client.get(JOURNEYS, {"pageSize": 2}).json()


def test_page_links_keep_the_query_but_not_a_key_sent_in_it(api_key, db):
    JourneyFactory.create_batch(3)

    body = APIClient().get(f"{JOURNEYS}?api_key={api_key}&pageSize=1&page=2&state=Running").json()

    assert body["nextPageUrl"] == "http://testserver/api/journeys?pageSize=1&page=3&state=Running"
    assert body["previousPageUrl"].endswith("?pageSize=1&page=1&state=Running")


def test_a_page_past_the_end_is_empty_and_links_back_to_the_last(api_client, db):
    JourneyFactory()

    body = api_client.get(JOURNEYS, {"page": 9}).json()

    assert body["journeys"] == []
    assert body["totalJourneysCount"] == 1
    assert body["previousPageUrl"].endswith("page=1")
    assert "nextPageUrl" not in body


def test_journeys_sort_by_the_fields_iterable_allows(api_client, db):
    b = JourneyFactory(name="b")
    c = JourneyFactory(name="c")
    a = JourneyFactory(name="a")

    def names(query):
        return [j["name"] for j in api_client.get(f"{JOURNEYS}?{query}").json()["journeys"]]

    assert names("sort=-name") == ["c", "b", "a"]
    assert names("sort=%2Bname") == ["a", "b", "c"]
    assert names("sort=+name") == ["a", "b", "c"]  # "+" unencoded arrives as a space
    assert names("sort=-id") == [a.name, c.name, b.name]
    assert names("sort=createdAt") == ["b", "c", "a"]


@pytest.mark.parametrize(
    "query",
    ["pageSize=51", "pageSize=0", "page=0", "page=x", "sort=email", "sort=--id", "state=Live"],
)
def test_parameters_out_of_bounds_are_a_400(api_client, db, query):
    JourneyFactory()

    response = api_client.get(f"{JOURNEYS}?{query}")

    assert response.status_code == 400
    assert envelope(response)["code"] == "BadParams"


def test_a_page_of_journeys_costs_the_same_queries_whatever_it_holds(api_client, db):
    def queries_for_a_page_of(count):
        Journey.objects.all().delete()
        for _ in range(count):
            journey_with_a_step(created_by=UserFactory())
        api_client.get(JOURNEYS)  # the key's first use is looked up once, then cached
        with CaptureQueriesContext(connection) as captured:
            body = api_client.get(JOURNEYS, {"pageSize": 50}).json()
        assert len(body["journeys"]) == count
        return len(captured)

    assert queries_for_a_page_of(4) == queries_for_a_page_of(8) > 0


# --- POST /api/workflows/triggerWorkflow: one contact --------------------------


def test_trigger_enrolls_the_user_with_the_data_fields(api_client, db):
    journey = journey_with_a_step()
    nia = ContactFactory(email="nia@example.com")

    response = api_client.post(
        TRIGGER,
        {"workflowId": journey.pk, "email": "NIA@example.com", "dataFields": {"plan": "pro"}},
        format="json",
    )

    assert response.status_code == 200
    assert envelope(response) == {
        "msg": f"Journey {journey.pk} triggered.",
        "code": "Success",
        "params": {"workflowId": journey.pk, "enrolled": True},
    }
    enrollment = Enrollment.objects.get()
    assert (enrollment.journey, enrollment.contact) == (journey, nia)
    assert enrollment.state == Enrollment.State.ACTIVE
    assert enrollment.trigger_data == {"plan": "pro"}
    assert enrollment.current_step == journey.steps.get()


def test_null_fields_read_as_absent_as_iterables_clients_send_them(api_client, db):
    journey = journey_with_a_step()
    nia = ContactFactory(email="nia@example.com")
    body = {
        "workflowId": journey.pk,
        "email": "nia@example.com",
        "userId": None,
        "listId": None,
        "dataFields": None,
    }

    response = api_client.post(TRIGGER, body, format="json")

    assert (response.status_code, envelope(response)["code"]) == (200, "Success")
    assert Enrollment.objects.get().contact == nia
    assert Enrollment.objects.get().trigger_data == {}


def test_trigger_finds_the_user_by_user_id(api_client, db):
    journey = journey_with_a_step()
    contact = ContactFactory(email=None, user_id="app-7")

    response = api_client.post(
        TRIGGER, {"workflowId": journey.pk, "userId": "app-7"}, format="json"
    )

    assert response.status_code == 200
    assert Enrollment.objects.get().contact == contact
    assert Enrollment.objects.get().trigger_data == {}


def test_a_user_already_on_the_journey_is_not_enrolled_twice(api_client, db):
    journey = journey_with_a_step()
    nia = ContactFactory(email="nia@example.com")
    EnrollmentFactory(journey=journey, contact=nia)

    response = api_client.post(
        TRIGGER, {"workflowId": journey.pk, "email": "nia@example.com"}, format="json"
    )

    assert response.status_code == 200
    body = envelope(response)
    assert (body["code"], body["params"]["enrolled"]) == ("Success", False)
    assert Enrollment.objects.count() == 1


def test_an_unknown_user_is_a_400_that_creates_no_one(api_client, db):
    journey = journey_with_a_step()

    response = api_client.post(
        TRIGGER, {"workflowId": journey.pk, "email": "nobody@example.com"}, format="json"
    )

    assert response.status_code == 400
    assert envelope(response) == {
        "msg": "No user with that email or userId.",
        "code": "BadParams",
        "params": None,
    }
    assert not Enrollment.objects.exists()
    assert not Contact.objects.exists()


@pytest.mark.parametrize("state", ["draft", "paused", "archived"])
def test_a_journey_that_is_not_live_is_refused(api_client, db, state):
    journey = journey_with_a_step(state=state)
    ContactFactory(email="nia@example.com")
    contact_list = list_of(2)

    by_user = api_client.post(
        TRIGGER, {"workflowId": journey.pk, "email": "nia@example.com"}, format="json"
    )
    by_list = api_client.post(
        TRIGGER, {"workflowId": journey.pk, "listId": contact_list.pk}, format="json"
    )

    for response in (by_user, by_list):
        assert response.status_code == 400
        body = envelope(response)
        assert body["code"] == "BadParams"
        assert "only a live journey can be triggered" in body["msg"]
    assert not Enrollment.objects.exists()


def test_a_journey_without_an_api_trigger_is_refused_and_enrolls_no_one(api_client, db):
    journey = journey_with_a_step(trigger_type=JourneyTrigger.Kind.EVENT)
    ContactFactory(email="nia@example.com")

    response = api_client.post(
        TRIGGER, {"workflowId": journey.pk, "email": "nia@example.com"}, format="json"
    )

    assert response.status_code == 400
    body = envelope(response)
    assert body["code"] == "BadParams"
    assert "does not start from the API" in body["msg"]
    assert not Enrollment.objects.exists()


def test_an_unknown_workflow_id_is_a_400(api_client, db):
    ContactFactory(email="nia@example.com")

    response = api_client.post(
        TRIGGER, {"workflowId": 987654, "email": "nia@example.com"}, format="json"
    )

    assert response.status_code == 400
    assert envelope(response) == {
        "msg": "No journey with id 987654.",
        "code": "BadParams",
        "params": None,
    }
    assert not Enrollment.objects.exists()


BAD_TRIGGERS = {
    "no workflowId": ({"email": "nia@example.com"}, "BadParams"),
    "nobody named": ({"workflowId": 1}, "BadParams"),
    "a user and a list": ({"workflowId": 1, "email": "nia@example.com", "listId": 1}, "BadParams"),
    "a bad email": ({"workflowId": 1, "email": "nia"}, "InvalidEmailAddressError"),
    "workflowId not a number": ({"workflowId": "one", "listId": 1}, "BadParams"),
    "dataFields not an object": ({"workflowId": 1, "listId": 1, "dataFields": [1]}, "BadParams"),
}


@pytest.mark.parametrize("body, code", BAD_TRIGGERS.values(), ids=BAD_TRIGGERS.keys())
def test_a_malformed_trigger_is_a_400_that_writes_nothing(api_client, db, rq_queue, body, code):
    journey_with_a_step(pk=1)
    ContactFactory(email="nia@example.com")
    list_of(1, pk=1)

    response = api_client.post(TRIGGER, body, format="json")

    assert response.status_code == 400
    assert envelope(response)["code"] == code
    assert not Enrollment.objects.exists()
    assert rq_queue.count == 0


# --- POST /api/workflows/triggerWorkflow: a whole list -------------------------


@pytest.mark.django_db(transaction=True)
def test_a_list_trigger_answers_at_once_and_a_worker_enrolls_every_member(
    api_client, rq_queue, run_worker
):
    journey = journey_with_a_step()
    contact_list = list_of(5)
    ContactFactory()  # not a member

    response = api_client.post(
        TRIGGER,
        {"workflowId": journey.pk, "listId": contact_list.pk, "dataFields": {"offer": "spring"}},
        format="json",
    )

    assert response.status_code == 200
    assert envelope(response)["params"] == {"workflowId": journey.pk, "listId": contact_list.pk}
    assert not Enrollment.objects.exists()  # nothing yet: one job waits
    assert rq_queue.count == 1

    run_worker()

    assert rq_queue.count == 0
    enrollments = Enrollment.objects.filter(journey=journey)
    assert set(enrollments.values_list("contact_id", flat=True)) == set(
        contact_list.contacts.values_list("pk", flat=True)
    )
    assert enrollments.count() == 5
    assert {e.trigger_data["offer"] for e in enrollments} == {"spring"}
    assert {e.state for e in enrollments} == {Enrollment.State.ACTIVE}
    assert {e.current_step_id for e in enrollments} == {journey.steps.get().pk}


@pytest.mark.django_db(transaction=True)
def test_the_list_job_costs_the_same_queries_for_twice_the_members(
    api_client, rq_queue, run_worker
):
    def queries_to_enroll(size):
        journey = journey_with_a_step()
        contact_list = list_of(size)
        api_client.post(
            TRIGGER, {"workflowId": journey.pk, "listId": contact_list.pk}, format="json"
        )
        with CaptureQueriesContext(connection) as captured:
            run_worker()
        assert journey.enrollments.count() == size
        return len(captured)

    assert queries_to_enroll(6) == queries_to_enroll(12) > 0


@pytest.mark.django_db(transaction=True)
def test_an_unknown_list_is_a_400_that_enqueues_nothing(api_client, rq_queue):
    journey = journey_with_a_step()

    response = api_client.post(TRIGGER, {"workflowId": journey.pk, "listId": 4242}, format="json")

    assert response.status_code == 400
    assert envelope(response)["msg"] == "No list with id 4242."
    assert rq_queue.count == 0


def test_list_entry_goes_chunk_by_chunk_and_a_second_run_enrolls_no_one(db):
    journey = journey_with_a_step()
    contact_list = list_of(7)

    first = journeys_enroll_list(journey_id=journey.pk, list_id=contact_list.pk, chunk_size=2)
    again = journeys_enroll_list(journey_id=journey.pk, list_id=contact_list.pk, chunk_size=2)

    assert (first, again) == (7, 0)
    assert journey.enrollments.count() == 7


def test_list_entry_keeps_to_the_journeys_reentry_policy(db):
    once = journey_with_a_step(reentry=Journey.Reentry.NEVER)
    again = journey_with_a_step(reentry=Journey.Reentry.AFTER_EXIT)
    contact_list = list_of(3)
    finished, still_on, _ = contact_list.contacts.order_by("pk")
    for journey in (once, again):
        EnrollmentFactory(journey=journey, contact=finished, state=Enrollment.State.COMPLETED)
        EnrollmentFactory(journey=journey, contact=still_on, state=Enrollment.State.WAITING)

    entered_once = journeys_enroll_list(journey_id=once.pk, list_id=contact_list.pk)
    entered_again = journeys_enroll_list(journey_id=again.pk, list_id=contact_list.pk)

    assert (entered_once, entered_again) == (1, 2)
    assert again.enrollments.filter(contact=finished, state="active").exists()
    assert not again.enrollments.filter(contact=still_on, state="active").exists()


def test_a_journey_paused_before_the_job_runs_enrolls_no_one(db):
    journey = journey_with_a_step(state=Journey.State.PAUSED)
    contact_list = list_of(2)

    entered = journeys_enroll_list(journey_id=journey.pk, list_id=contact_list.pk)

    assert entered == 0
    assert not Enrollment.objects.exists()
