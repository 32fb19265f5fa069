"""The journey list: what each row says, folders, search, filters, sorting,
and the lifecycle actions' confirmations, at a cost that does not grow with
the page or with the journeys' traffic."""

import re

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from journeys.models import Enrollment, Journey, JourneyTrigger, StepRun
from messaging.models import Message
from tests.admin_pages import result_rows
from tests.factories import (
    EnrollmentFactory,
    JourneyFactory,
    MessageFactory,
    SendMessageStepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:journeys_journey_changelist")


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_superuser=True, username="maria"))
    return client


def signed_in(role):
    user = UserFactory(is_superuser=False, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def cells(row):
    """{column class: text} of one changelist row."""
    found = re.findall(r'<(?:td|th) class="field-([\w_]+)[^"]*">(.*?)</(?:td|th)>', row, re.S)
    return {name: re.sub(r"<[^>]+>", " ", html).split() for name, html in found}


def row_of(response, name):
    for row in result_rows(response):
        if f">{name}<" in row:
            return cells(row)
    raise AssertionError(f"no row for {name!r}")


def run(enrollment, step, sequence, message):
    now = timezone.now()
    StepRun.objects.create(
        enrollment=enrollment,
        step=step,
        sequence=sequence,
        message=message,
        outcome=StepRun.Outcome.CONTINUED,
        started_at=now,
        finished_at=now,
    )


def busy_journey(name, *, inside=2, finished=1, sent=3, converted=1, **fields):
    """A journey with contacts inside, finished ones, messages sent through a step, conversions."""
    journey = JourneyFactory(name=name, **fields)
    step = SendMessageStepFactory(journey=journey, key="hello", position=1)
    for _ in range(inside):
        EnrollmentFactory(journey=journey, state=Enrollment.State.WAITING)
    for n in range(finished + converted):
        EnrollmentFactory(
            journey=journey,
            state=Enrollment.State.COMPLETED,
            goal_reached_at=timezone.now() if n < converted else None,
        )
    enrollment = Enrollment.objects.filter(journey=journey).first()
    sent_by_step = {"origin": Message.Origin.JOURNEY, "origin_id": enrollment.pk,
                    "origin_step_id": step.pk, "template": step.template}  # fmt: skip
    for n in range(sent):
        message = MessageFactory(**sent_by_step, sent_at=timezone.now())
        run(enrollment, step, n, message)
    # A message that was never sent does not count.
    run(enrollment, step, sent, MessageFactory(**sent_by_step, status="failed"))
    return journey


def test_a_row_shows_folder_state_trigger_figures_and_who_changed_it_last(staff_client):
    editor = UserFactory(username="lena")
    journey = busy_journey("Trial ending", folder="Onboarding/Trials", inside=2, sent=3)
    Journey.objects.filter(pk=journey.pk).update(modified_by=editor)

    row = row_of(staff_client.get(CHANGELIST), "Trial ending")

    assert row["folder_link"] == ["Onboarding/Trials"]
    assert row["state"] == ["Live"]
    assert row["trigger_summary"] == ["event", "“signed_up”"]
    assert (row["inside_now"], row["messages_sent"], row["conversions"]) == (["2"], ["3"], ["1"])
    assert row["last_modified"][-2:] == ["by", "lena"]


def test_the_page_costs_the_same_queries_for_five_journeys_as_for_ten(staff_client):
    for n in range(5):
        busy_journey(f"First {n}")

    with CaptureQueriesContext(connection) as five:
        staff_client.get(CHANGELIST)
    for n in range(5):
        busy_journey(f"Second {n}")
    with CaptureQueriesContext(connection) as ten:
        response = staff_client.get(CHANGELIST)

    assert len(result_rows(response)) == 10
    assert len(ten.captured_queries) == len(five.captured_queries)


def test_the_page_never_counts_enrollments_beyond_the_journeys_it_shows(staff_client):
    for n in range(3):
        busy_journey(f"Journey {n}")

    with CaptureQueriesContext(connection) as page:
        staff_client.get(CHANGELIST, {"p": 0})

    reads = [q["sql"] for q in page.captured_queries if "journeys_enrollment" in q["sql"]]
    assert reads  # the figure columns read them …
    assert all('"journey_id" IN (' in sql for sql in reads)  # … for the listed journeys only
    # The paginator counts journeys, not journeys joined to their enrollments.
    counts = [q["sql"] for q in page.captured_queries if "COUNT(" in q["sql"]]
    assert not [sql for sql in counts if "journeys_enrollment" in sql and "IN (" not in sql]


def test_search_finds_journeys_by_name_folder_or_trigger_event(staff_client):
    JourneyFactory(name="Cart abandoned", trigger_event_name="cart_left")
    JourneyFactory(name="Spring sale", folder="Promotions")
    JourneyFactory(name="Welcome")

    def found(term):
        response = staff_client.get(CHANGELIST, {"q": term})
        return sorted(
            re.findall(r'class="field-name"><a [^>]*>([^<]+)<', response.content.decode())
        )

    assert found("sale") == ["Spring sale"]
    assert found("promo") == ["Spring sale"]
    assert found("cart_left") == ["Cart abandoned"]


def test_filters_by_state_and_trigger_kind(staff_client):
    JourneyFactory(name="Live one")
    JourneyFactory(name="Draft one", state=Journey.State.DRAFT)
    JourneyFactory(name="By API", trigger_type=JourneyTrigger.Kind.API)

    drafts = staff_client.get(CHANGELIST, {"state__exact": "draft"})
    api = staff_client.get(CHANGELIST, {"triggers__kind__exact": "api"})

    assert [r for r in result_rows(drafts) if "Draft one" in r] and len(result_rows(drafts)) == 1
    assert [r for r in result_rows(api) if "By API" in r] and len(result_rows(api)) == 1


def test_sorting_by_name_both_ways(staff_client):
    for name in ("Bravo", "Alpha", "Charlie"):
        JourneyFactory(name=name)

    def names(order):
        response = staff_client.get(CHANGELIST, {"o": order})
        return re.findall(r'class="field-name"><a [^>]*>([^<]+)<', response.content.decode())

    assert names("1") == ["Alpha", "Bravo", "Charlie"]
    assert names("-1") == ["Charlie", "Bravo", "Alpha"]


def test_browsing_a_folder_shows_it_and_the_folders_below_with_counts(staff_client):
    JourneyFactory(name="Welcome", folder="Onboarding")
    JourneyFactory(name="Trial ending", folder="Onboarding/Trials")
    JourneyFactory(name="Trial extended", folder="Onboarding/Trials")
    JourneyFactory(name="Spring sale", folder="Promotions")
    JourneyFactory(name="Loose")

    top = staff_client.get(CHANGELIST).content.decode()
    onboarding = staff_client.get(CHANGELIST, {"folder": "Onboarding"})
    trials = staff_client.get(CHANGELIST, {"folder": "Onboarding/Trials"})
    loose = staff_client.get(CHANGELIST, {"folder": "/"})

    assert re.findall(r'<a href="\?folder=(\w+)">\w+</a> \((\d+)\)', top) == [
        ("Onboarding", "3"),
        ("Promotions", "1"),
    ]
    body = onboarding.content.decode()
    assert len(result_rows(onboarding)) == 3
    assert "<strong>Onboarding</strong> (3)" in body
    assert '<a href="?folder=Onboarding%2FTrials">Trials</a> (2)' in body
    body = trials.content.decode()
    assert len(result_rows(trials)) == 2
    assert '<a href="?folder=Onboarding">Onboarding</a>' in body
    assert "<strong>Trials</strong> (2)" in body
    assert [r for r in result_rows(loose) if ">Loose<" in r] and len(result_rows(loose)) == 1


def test_a_folder_is_stored_in_one_spelling(staff_client):
    journey = JourneyFactory(name="Spaced", folder=" Onboarding / Trials/ ")

    journey.full_clean()

    assert journey.folder == "Onboarding/Trials"


def test_folder_names_are_escaped(staff_client):
    JourneyFactory(name="Odd", folder="<b>Bold</b>")

    body = staff_client.get(CHANGELIST).content.decode()

    assert "<b>Bold</b>" not in body
    assert "&lt;b&gt;Bold&lt;" in body


def test_pausing_a_journey_with_contacts_inside_asks_first(staff_client):
    journey = busy_journey("Welcome", inside=3)

    asked = staff_client.post(CHANGELIST, {"action": "pause", "_selected_action": [journey.pk]})
    journey.refresh_from_db()
    assert journey.state == Journey.State.LIVE
    body = asked.content.decode()
    assert "3 contacts are inside this journey" in body
    assert 'name="csrfmiddlewaretoken"' in body

    staff_client.post(
        CHANGELIST, {"action": "pause", "_selected_action": [journey.pk], "confirmed": "yes"}
    )
    journey.refresh_from_db()
    assert journey.state == Journey.State.PAUSED
    assert Enrollment.objects.filter(journey=journey, state="waiting").count() == 3


def test_archiving_a_journey_with_contacts_inside_asks_and_takes_them_out(staff_client):
    journey = busy_journey("Welcome", inside=2)

    asked = staff_client.post(CHANGELIST, {"action": "archive", "_selected_action": [journey.pk]})
    assert "2 contacts are still in this journey" in asked.content.decode()
    staff_client.post(
        CHANGELIST, {"action": "archive", "_selected_action": [journey.pk], "confirmed": "yes"}
    )

    journey.refresh_from_db()
    assert journey.state == Journey.State.ARCHIVED
    assert not Enrollment.objects.filter(journey=journey, state__in=Enrollment.OPEN_STATES)


@pytest.mark.parametrize("action", ["go_live", "pause", "archive"])
def test_a_drafter_cannot_confirm_a_lifecycle_action_by_a_forged_post(action):
    drafter = signed_in("Journey drafters")
    live = busy_journey("Welcome", inside=1)
    draft = JourneyFactory(name="Draft", state=Journey.State.DRAFT)
    SendMessageStepFactory(journey=draft, key="hi", position=1)

    offered = drafter.get(CHANGELIST).context["action_form"].fields["action"].choices
    drafter.post(
        CHANGELIST,
        {"action": action, "_selected_action": [live.pk, draft.pk], "confirmed": "yes"},
    )

    assert action not in [name for name, _ in offered]
    live.refresh_from_db()
    draft.refresh_from_db()
    assert (live.state, draft.state) == (Journey.State.LIVE, Journey.State.DRAFT)
    assert Enrollment.objects.filter(journey=live, state="waiting").count() == 1


def test_a_manager_is_offered_every_action_and_a_drafter_copy_only():
    manager = signed_in("Journey managers")
    drafter = signed_in("Journey drafters")
    JourneyFactory(name="Welcome")

    def offered(client):
        return {
            name
            for name, _ in client.get(CHANGELIST).context["action_form"].fields["action"].choices
        }

    assert {"copy", "go_live", "pause", "archive"} <= offered(manager)
    assert "copy" in offered(drafter)
    assert not {"go_live", "pause", "archive"} & offered(drafter)


def test_the_journey_list_needs_the_journey_view_permission(client):
    client.force_login(UserFactory(is_superuser=False, is_staff=True))
    JourneyFactory(name="Welcome")

    assert client.get(CHANGELIST).status_code == 403


def test_going_live_again_with_contacts_held_inside_asks_first(staff_client):
    journey = busy_journey("Welcome", inside=2)
    Journey.objects.filter(pk=journey.pk).update(state=Journey.State.PAUSED)

    asked = staff_client.post(CHANGELIST, {"action": "go_live", "_selected_action": [journey.pk]})
    journey.refresh_from_db()
    assert journey.state == Journey.State.PAUSED
    assert "2 contacts are held in this paused journey" in asked.content.decode()

    staff_client.post(
        CHANGELIST, {"action": "go_live", "_selected_action": [journey.pk], "confirmed": "yes"}
    )
    journey.refresh_from_db()
    assert journey.state == Journey.State.LIVE
