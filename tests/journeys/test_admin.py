import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from journeys.models import ConditionStep, DelayStep, Enrollment, Journey
from tests.factories import ContactFactory, EnrollmentFactory, JourneyFactory, UserFactory


def form_data(response):
    """The data a browser would post back for an admin change form, unchanged."""
    data = {}
    form = response.context["adminform"].form
    for name in form.fields:
        value = form[name].value()
        if value is not None:
            data[name] = value
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{name}"] = value
        for sub in formset.forms:
            for name in sub.fields:
                value = sub[name].value()
                if value is not None and value is not False:
                    data[sub.add_prefix(name)] = value
    return data


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(is_superuser=True))
    return client


def test_journey_changelist_counts_enrollments_without_n_plus_one(
    staff_client, django_assert_num_queries
):
    for _ in range(3):
        journey = JourneyFactory()
        for _ in range(2):
            EnrollmentFactory(journey=journey, contact=ContactFactory())
    url = reverse("admin:journeys_journey_changelist")

    with django_assert_num_queries(6):
        response = staff_client.get(url)
    assert response.status_code == 200
    JourneyFactory.create_batch(3)
    with django_assert_num_queries(6):
        response = staff_client.get(url)
    assert response.status_code == 200
    assert response.content.count(b'<td class="field-open_enrollments">2</td>') == 3


def test_journey_change_page_shows_every_step_type(staff_client, welcome_series):
    response = staff_client.get(reverse("admin:journeys_journey_change", args=[welcome_series.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    for verbose in ("Send email step", "Delay step", "Yes/no condition step", "Exit step"):
        assert verbose in body


def test_step_links_offer_only_this_journeys_steps(staff_client, welcome_series):
    other = JourneyFactory(name="Other journey")
    ConditionStep.objects.create(journey=other, key="elsewhere", position=1, event_name="x")

    response = staff_client.get(reverse("admin:journeys_journey_change", args=[welcome_series.pk]))

    formset = response.context["inline_admin_formsets"][0].formset
    condition_form = next(f for f in formset.forms if isinstance(f.instance, ConditionStep))
    choices = {step.journey_id for step in condition_form.fields["no_step"].queryset}
    assert choices == {welcome_series.pk}


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
    condition.no_step = stranger

    with pytest.raises(Exception, match="same journey"):
        condition.full_clean()


def test_enrollment_changelist_is_read_only_and_fixed_cost(
    staff_client, welcome_series, django_assert_num_queries
):
    for _ in range(3):
        EnrollmentFactory(journey=welcome_series, current_step=welcome_series.step_map["wait"])
    url = reverse("admin:journeys_enrollment_changelist")

    with django_assert_num_queries(5):
        response = staff_client.get(url)
    assert response.status_code == 200
    EnrollmentFactory.create_batch(
        3, journey=welcome_series, current_step=welcome_series.step_map["welcome"]
    )
    with django_assert_num_queries(5):
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
            "trigger_type": "event",
            "trigger_event_name": "birthday",
            "reentry": "after_exit",
            "steps-TOTAL_FORMS": 0,
            "steps-INITIAL_FORMS": 0,
            "steps-MIN_NUM_FORMS": 0,
            "steps-MAX_NUM_FORMS": 1000,
        },
    )

    assert response.status_code == 302
    journey = Journey.objects.get(name="Birthday")
    assert journey.created_by is not None


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
