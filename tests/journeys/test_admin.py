import re

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from journeys.models import (
    ConditionStep,
    DelayStep,
    Enrollment,
    ExitStep,
    Journey,
    SendMessageStep,
)
from journeys.services.graph import StepLinkError, step_connect, step_connections
from tests.admin_pages import form_data
from tests.databases import ESTIMATED_COUNT
from tests.factories import (
    ContactFactory,
    EnrollmentFactory,
    JourneyFactory,
    TemplateFactory,
    UserFactory,
)


def test_journey_changelist_counts_enrollments_without_n_plus_one(staff_client):
    for _ in range(3):
        journey = JourneyFactory()
        for _ in range(2):
            EnrollmentFactory(journey=journey, contact=ContactFactory())
    url = reverse("admin:journeys_journey_changelist")

    # One of the queries reads every listed journey's entry triggers at once.
    with CaptureQueriesContext(connection) as three:
        response = staff_client.get(url)
    assert response.status_code == 200
    JourneyFactory.create_batch(3)
    with CaptureQueriesContext(connection) as six:
        response = staff_client.get(url)
    assert response.status_code == 200
    assert len(six.captured_queries) == len(three.captured_queries)
    assert response.content.count(b'<td class="field-inside_now">2</td>') == 3
    assert response.content.decode().count("event “signed_up”") == 6


def test_journey_change_page_shows_every_step_type(staff_client, welcome_series):
    response = staff_client.get(reverse("admin:journeys_journey_change", args=[welcome_series.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    for verbose in ("Send message step", "Delay step", "Yes/no condition step", "Exit step"):
        assert verbose in body


def test_connections_suggest_this_journeys_step_keys_only(staff_client, welcome_series):
    other = JourneyFactory(name="Other journey")
    ConditionStep.objects.create(journey=other, key="elsewhere", position=1, event_name="x")

    response = staff_client.get(reverse("admin:journeys_journey_change", args=[welcome_series.pk]))

    formset = next(
        f.formset for f in response.context["inline_admin_formsets"] if f.formset.prefix == "steps"
    )
    condition_form = next(f for f in formset.forms if isinstance(f.instance, ConditionStep))
    assert condition_form["go_no"].value() == "nudge"
    assert condition_form["go_yes"].value() == "done"
    body = response.content.decode()
    # one list of the journey's keys, which every key field offers
    datalist = body[body.index('<datalist id="journey-step-keys">') :]
    datalist = datalist[: datalist.index("</datalist>")]
    suggested = re.findall(r'<option value="([^"]+)">', datalist)
    assert set(suggested) == {"welcome", "wait", "created-project", "nudge", "done"}
    assert "elsewhere" not in body


def test_a_step_that_leads_to_itself_is_a_form_error(staff_client, welcome_series):
    url = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    data = form_data(staff_client.get(url))
    go_no = next(k for k in data if k.endswith("-go_no"))
    data[go_no] = "created-project"  # the condition's own key

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert "A step cannot lead to itself." in response.content.decode()
    assert step_connections(step=welcome_series.step_map["condition"])["no"].key == "nudge"


def test_a_connection_to_a_key_the_journey_does_not_have_is_a_form_error(
    staff_client, welcome_series
):
    other = JourneyFactory(name="Other journey")
    ConditionStep.objects.create(journey=other, key="elsewhere", position=1, event_name="x")
    url = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    data = form_data(staff_client.get(url))
    go_no = next(k for k in data if k.endswith("-go_no"))
    data[go_no] = "elsewhere"

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert "No step of this journey has the key “elsewhere”" in response.content.decode()
    assert step_connections(step=welcome_series.step_map["condition"])["no"].key == "nudge"


def test_editing_a_live_journey_in_the_admin_saves_steps(staff_client, welcome_series):
    url = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    data = form_data(staff_client.get(url))
    data["name"] = "Welcome series v2"
    delay_prefix = next(key[: -len("-amount")] for key in data if key.endswith("-amount"))
    data[f"{delay_prefix}-amount"] = 3

    response = staff_client.post(url, data)

    assert response.status_code == 302, response.context["errors"] if response.context else ""
    welcome_series.refresh_from_db()
    assert welcome_series.name == "Welcome series v2"
    assert welcome_series.modified_by is not None
    welcome_series.step_map["wait"].refresh_from_db()
    assert welcome_series.step_map["wait"].amount == 3


def test_a_condition_pointing_into_another_journey_is_refused(welcome_series):
    other = JourneyFactory(name="Other")
    stranger = ConditionStep.objects.create(journey=other, key="s", position=1, event_name="x")
    condition = welcome_series.step_map["condition"]

    with pytest.raises(StepLinkError, match="same journey"):
        step_connect(step=condition, targets={"no": stranger})

    assert step_connections(step=condition)["no"].key == "nudge"


@pytest.mark.postgresql(reason=ESTIMATED_COUNT)
def test_enrollment_changelist_is_read_only_and_fixed_cost(
    staff_client, welcome_series, django_assert_num_queries
):
    for _ in range(3):
        EnrollmentFactory(journey=welcome_series, current_step=welcome_series.step_map["wait"])
    url = reverse("admin:journeys_enrollment_changelist")

    # session, user, journey filter choices, row estimate, count, rows
    with django_assert_num_queries(6):
        response = staff_client.get(url)
    assert response.status_code == 200
    EnrollmentFactory.create_batch(
        3, journey=welcome_series, current_step=welcome_series.step_map["welcome"]
    )
    with django_assert_num_queries(6):
        staff_client.get(url)
    assert Enrollment.objects.count() == 6
    add = staff_client.get(reverse("admin:journeys_enrollment_add"))
    assert add.status_code == 403


def test_staff_without_permission_cannot_see_journeys(client, db):
    client.force_login(UserFactory(is_superuser=False))

    response = client.get(reverse("admin:journeys_journey_changelist"))

    assert response.status_code == 403


def test_creating_a_journey_records_its_author(staff_client):
    response = staff_client.post(
        reverse("admin:journeys_journey_add"),
        {
            "name": "Birthday",
            "state": "draft",
            "triggers-TOTAL_FORMS": 1,
            "triggers-INITIAL_FORMS": 0,
            "triggers-MIN_NUM_FORMS": 0,
            "triggers-MAX_NUM_FORMS": 1000,
            "triggers-0-kind": "event",
            "triggers-0-event_name": "birthday",
            "triggers-0-event_filter": "{}",
            "triggers-0-offset_days": 0,
            "triggers-0-every_unit": "days",
            "audience": "{}",
            "reentry": "after_exit",
            "goal_window_days": 30,
            "steps-TOTAL_FORMS": 0,
            "steps-INITIAL_FORMS": 0,
            "steps-MIN_NUM_FORMS": 0,
            "steps-MAX_NUM_FORMS": 1000,
        },
    )

    assert response.status_code == 302
    journey = Journey.objects.get(name="Birthday")
    assert journey.created_by is not None
    assert [(t.kind, t.event_name) for t in journey.triggers.all()] == [("event", "birthday")]


def test_a_duplicate_step_key_is_a_form_error_not_a_crash(staff_client, welcome_series):
    url = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    data = form_data(staff_client.get(url))
    nudge_key_field = next(k for k, v in data.items() if k.endswith("-key") and v == "nudge")
    data[nudge_key_field] = "wait"

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert "already uses the key “wait”" in response.content.decode()
    assert welcome_series.steps.filter(key="nudge").exists()


def test_a_new_row_that_failed_validation_is_not_the_blank_template(staff_client, welcome_series):
    url = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    data = form_data(staff_client.get(url))
    n = int(data["steps-TOTAL_FORMS"])
    data["steps-TOTAL_FORMS"] = n + 1
    data.update(
        {
            f"steps-{n}-polymorphic_ctype": ContentType.objects.get_for_model(DelayStep).pk,
            f"steps-{n}-position": 9,
            f"steps-{n}-key": "wait",  # taken: the form comes back with an error
            f"steps-{n}-amount": 1,
            f"steps-{n}-unit": "hours",
        }
    )

    body = staff_client.post(url, data).content.decode()

    assert "already uses the key “wait”" in body
    # The failed row has its own id and can be dropped; "Add another" clones
    # the one blank template per type, not the failed row.
    assert body.count('id="delaystep-empty"') == 1
    assert f'id="steps-{n}"' in body
    assert f'name="steps-{n}-DELETE"' in body


def put_on_step(journey, step, n):
    return [
        EnrollmentFactory(journey=journey, contact=ContactFactory(), current_step=step)
        for _ in range(n)
    ]


def test_a_step_with_contacts_on_it_cannot_be_deleted(staff_client, welcome_series):
    wait = welcome_series.step_map["wait"]
    put_on_step(welcome_series, wait, 2)
    url = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    data = form_data(staff_client.get(url))
    prefix = next(k[: -len("-id")] for k, v in data.items() if k.endswith("-id") and v == wait.pk)
    data[f"{prefix}-DELETE"] = "on"

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert "2 contact(s) are on step “wait”: in its “If deleted, move its contacts to”" in (
        response.content.decode()
    )
    assert welcome_series.steps.filter(pk=wait.pk).exists()


def test_deleting_a_step_with_contacts_moves_them_where_its_form_says(staff_client, welcome_series):
    wait, nudge = welcome_series.step_map["wait"], welcome_series.step_map["nudge"]
    waiting = put_on_step(welcome_series, wait, 2)
    url = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    data = form_data(staff_client.get(url))
    prefix = next(k[: -len("-id")] for k, v in data.items() if k.endswith("-id") and v == wait.pk)
    data[f"{prefix}-DELETE"] = "on"
    data[f"{prefix}-move_contacts_to"] = "nudge"

    response = staff_client.post(url, data)

    assert response.status_code == 302, response.context["errors"] if response.context else ""
    assert not welcome_series.steps.filter(pk=wait.pk).exists()
    moved = Enrollment.objects.filter(pk__in=[e.pk for e in waiting])
    assert set(moved.values_list("current_step_id", flat=True)) == {nudge.pk}
    assert set(moved.values_list("state", flat=True)) == {Enrollment.State.ACTIVE}


def test_an_empty_step_can_be_deleted(staff_client, welcome_series):
    nudge = welcome_series.step_map["nudge"]
    url = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    data = form_data(staff_client.get(url))
    prefix = next(k[: -len("-id")] for k, v in data.items() if k.endswith("-id") and v == nudge.pk)
    data[f"{prefix}-DELETE"] = "on"
    data[next(k for k in data if k.endswith("-go_no"))] = ""  # the condition led there

    response = staff_client.post(url, data)

    assert response.status_code == 302
    assert not welcome_series.steps.filter(pk=nudge.pk).exists()
    assert "no" not in step_connections(step=welcome_series.step_map["condition"])


def test_deleting_a_step_another_leads_to_asks_where_that_connection_goes(
    staff_client, welcome_series
):
    nudge = welcome_series.step_map["nudge"]
    url = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    data = form_data(staff_client.get(url))
    prefix = next(k[: -len("-id")] for k, v in data.items() if k.endswith("-id") and v == nudge.pk)
    data[f"{prefix}-DELETE"] = "on"

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert "Step “nudge” is being deleted: choose another step" in response.content.decode()
    assert welcome_series.steps.filter(pk=nudge.pk).exists()


def new_step_rows(data, *rows):
    """Add rows as "Add another step" does: a type and what was typed, nothing more."""
    n = int(data.get("steps-TOTAL_FORMS", 0))
    data["steps-TOTAL_FORMS"] = n + len(rows)
    for i, (model, typed) in enumerate(rows, start=n):
        data[f"steps-{i}-polymorphic_ctype"] = ContentType.objects.get_for_model(model).pk
        data.update({f"steps-{i}-{name}": value for name, value in typed.items()})
    return data


def test_a_journey_is_built_in_one_pass_on_the_add_page(staff_client):
    # Given the add page, three steps added in order, the condition pointing at
    # a step that exists only on this page, no positions typed
    template = TemplateFactory(name="Welcome")
    data = {
        "name": "Onboarding",
        "triggers-TOTAL_FORMS": 1,
        "triggers-INITIAL_FORMS": 0,
        "triggers-MIN_NUM_FORMS": 0,
        "triggers-MAX_NUM_FORMS": 1000,
        "triggers-0-kind": "event",
        "triggers-0-event_name": "signed_up",
        "triggers-0-event_filter": "{}",
        "triggers-0-offset_days": 0,
        "triggers-0-every_unit": "days",
        "audience": "{}",
        "reentry": "never",
        "goal_window_days": 30,
        "steps-INITIAL_FORMS": 0,
        "steps-MIN_NUM_FORMS": 0,
        "steps-MAX_NUM_FORMS": 1000,
    }
    new_step_rows(
        data,
        (SendMessageStep, {"key": "welcome", "template": template.pk}),
        (ConditionStep, {"key": "pro", "kind": "attribute", "attribute": "plan",
                         "operator": "eq", "value": '"pro"', "go_yes": "thanks"}),
        (ExitStep, {"name": "Thanks"}),
    )  # fmt: skip

    # When it is saved once
    response = staff_client.post(reverse("admin:journeys_journey_add"), data)

    # Then every step is there, in page order, connected as chosen
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    journey = Journey.objects.get(name="Onboarding")
    steps = list(journey.steps.order_by("position"))
    assert [(s.position, s.key, type(s)) for s in steps] == [
        (1, "welcome", SendMessageStep),
        (2, "pro", ConditionStep),
        (3, "thanks", ExitStep),
    ]
    assert {k: t.key for k, t in step_connections(step=steps[1]).items()} == {"yes": "thanks"}


def test_a_new_step_left_as_it_came_is_kept_or_explained_never_dropped(
    staff_client, welcome_series
):
    url = reverse("admin:journeys_journey_change", args=[welcome_series.pk])
    data = new_step_rows(form_data(staff_client.get(url)), (ExitStep, {}), (SendMessageStep, {}))

    response = staff_client.post(url, data)

    # The send step needs its template: the page says so and nothing is saved.
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert welcome_series.steps.count() == 5

    # Without the send row, the untouched exit step is saved after the others.
    data = new_step_rows(form_data(staff_client.get(url)), (ExitStep, {}))
    response = staff_client.post(url, data)
    assert response.status_code == 302
    added = welcome_series.steps.order_by("-position").first()
    assert (type(added), added.key, added.position) == (ExitStep, "exit", 6)


def test_contacts_can_be_exited_from_the_admin(staff_client, welcome_series):
    waiting = put_on_step(welcome_series, welcome_series.step_map["wait"], 2)

    response = staff_client.post(
        reverse("admin:journeys_enrollment_changelist"),
        {"action": "exit_selected", "_selected_action": [e.pk for e in waiting]},
    )

    assert response.status_code == 302
    assert set(Enrollment.objects.values_list("state", flat=True)) == {"exited"}
    assert Enrollment.objects.filter(current_step__isnull=True).count() == 2


def test_contacts_can_be_moved_to_another_step(staff_client, welcome_series):
    waiting = put_on_step(welcome_series, welcome_series.step_map["wait"], 2)
    url = reverse("admin:journeys_enrollment_changelist")
    selected = {"action": "move_selected", "_selected_action": [e.pk for e in waiting]}

    # First the admin asks where to
    ask = staff_client.post(url, selected)
    assert ask.status_code == 200
    assert "Move them to" in ask.content.decode()
    assert b"Other journey" not in ask.content

    done = staff_client.post(url, {**selected, "to_step": welcome_series.step_map["nudge"].pk})

    assert done.status_code == 302
    for enrollment in Enrollment.objects.all():
        assert enrollment.current_step_id == welcome_series.step_map["nudge"].pk
        assert enrollment.state == "active"
        assert enrollment.sequence == 1
        assert enrollment.next_run_at is not None


def test_contacts_are_only_moved_within_their_journey(staff_client, welcome_series):
    waiting = put_on_step(welcome_series, welcome_series.step_map["wait"], 1)
    other = JourneyFactory(name="Other journey")
    elsewhere = ConditionStep.objects.create(journey=other, key="x", position=1, event_name="x")

    response = staff_client.post(
        reverse("admin:journeys_enrollment_changelist"),
        {"action": "move_selected", "_selected_action": [waiting[0].pk], "to_step": elsewhere.pk},
    )

    assert response.status_code == 200  # the form refuses the foreign step and asks again
    assert Enrollment.objects.get().current_step_id == welcome_series.step_map["wait"].pk


def test_the_step_filter_lists_the_chosen_journeys_steps(staff_client, welcome_series):
    put_on_step(welcome_series, welcome_series.step_map["wait"], 2)
    put_on_step(welcome_series, welcome_series.step_map["nudge"], 1)
    url = reverse("admin:journeys_enrollment_changelist")

    response = staff_client.get(
        url,
        {"journey__id__exact": welcome_series.pk, "step": welcome_series.step_map["wait"].pk},
    )

    assert response.status_code == 200
    assert response.context["cl"].result_count == 2
    assert "2. wait" in response.content.decode()


def test_journeys_go_live_and_pause_from_the_changelist(staff_client, welcome_series):
    url = reverse("admin:journeys_journey_changelist")
    empty = JourneyFactory(name="Empty", state="draft")

    paused = staff_client.post(url, {"action": "pause", "_selected_action": [welcome_series.pk]})
    welcome_series.refresh_from_db()
    assert paused.status_code == 302
    assert welcome_series.state == "paused"

    staff_client.post(url, {"action": "go_live", "_selected_action": [welcome_series.pk, empty.pk]})

    welcome_series.refresh_from_db()
    empty.refresh_from_db()
    assert welcome_series.state == "live"
    assert empty.state == "draft"  # no steps: refused, with a message saying so
    shown = [str(m) for m in staff_client.get(url).context["messages"]]
    assert "“Empty” has no steps yet." in shown
