"""The demo workspace `make run` loads: complete, wired to the engine, and
safe to load on every start."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from contacts.models import ApiKey, Contact, ContactList, ListMembership
from contacts.services import api_key_authenticate, event_track
from journeys.demo import TEMPLATES, demo_workspace_load
from journeys.models import (
    ConditionStep,
    DelayStep,
    Enrollment,
    ExitStep,
    Journey,
    SendMessageStep,
    Step,
)
from journeys.services.graph import step_connections
from journeys.services.scheduling import scheduler_tick
from messaging.backends import get_backend
from messaging.models import Template
from messaging.rendering import contact_context, sanitize_html
from subscriptions.models import Channel, MessageType

DEMO_MODELS = [
    get_user_model(),
    Channel,
    MessageType,
    Template,
    Contact,
    ContactList,
    ListMembership,
    Journey,
    Step,
    ApiKey,
]


def counts():
    return {model.__name__: model.objects.count() for model in DEMO_MODELS}


@pytest.mark.django_db
def test_loading_twice_creates_nothing_the_second_time():
    # Given a loaded demo workspace
    first = demo_workspace_load()
    after_first = counts()

    # When it is loaded again
    second = demo_workspace_load()

    # Then nothing is duplicated, and the second load says so
    assert counts() == after_first
    assert after_first == {
        "User": 1,
        "Channel": 3,
        "MessageType": 4,
        "Template": 2,
        "Contact": 3,
        "ContactList": 1,
        "ListMembership": 2,
        "Journey": 1,
        "Step": 5,
        "ApiKey": 1,
    }
    assert first.created and first.admin_created
    assert second.created == [] and not second.admin_created


@pytest.mark.django_db
def test_loading_again_keeps_what_staff_changed():
    # Given a demo workspace whose welcome email and admin password were edited
    demo_workspace_load()
    Template.objects.filter(name="Welcome email").update(subject="Hello from Acme")
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("something else entirely")
    admin.save()
    Journey.objects.filter(name="Welcome series").update(state=Journey.State.PAUSED)

    # When the demo is loaded again
    demo_workspace_load()

    # Then the edits stand
    assert Template.objects.get(name="Welcome email").subject == "Hello from Acme"
    admin.refresh_from_db()
    assert admin.check_password("something else entirely")
    assert Journey.objects.get(name="Welcome series").state == Journey.State.PAUSED


@pytest.mark.django_db
def test_admin_can_log_in_with_the_demo_password():
    demo_workspace_load()

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("waymark-demo")


@pytest.mark.django_db
def test_welcome_series_is_live_with_its_five_steps_in_order():
    demo_workspace_load()

    journey = Journey.objects.get(name="Welcome series")
    assert journey.state == Journey.State.LIVE
    assert [(t.kind, t.event_name) for t in journey.triggers.all()] == [
        ("event", "signed_up"),
        ("api", ""),
    ]
    assert journey.reentry == Journey.Reentry.NEVER
    assert journey.goal_event_name == "project_created"
    steps = list(journey.steps.order_by("position"))
    assert [(s.position, s.key, type(s)) for s in steps] == [
        (1, "welcome", SendMessageStep),
        (2, "wait", DelayStep),
        (3, "created-project", ConditionStep),
        (4, "nudge", SendMessageStep),
        (5, "done", ExitStep),
    ]
    welcome, wait, condition, nudge, done = steps
    assert welcome.template.name == "Welcome email"
    assert (wait.amount, wait.unit) == (2, DelayStep.Unit.MINUTES)
    assert condition.kind == ConditionStep.Kind.EVENT_SINCE_ENTRY
    assert condition.event_name == "project_created"
    connections = step_connections(step=condition)
    assert {label: target.pk for label, target in connections.items()} == {
        "yes": done.pk,
        "no": nudge.pk,
    }
    assert nudge.template.name == "Getting started nudge"


@pytest.mark.django_db
def test_channels_and_message_types_have_their_policies():
    demo_workspace_load()

    assert set(Channel.objects.values_list("name", "medium", "kind")) == {
        ("Email", "email", "marketing"),
        ("Transactional email", "email", "transactional"),
        ("SMS", "sms", "marketing"),
    }
    assert set(MessageType.objects.values_list("channel__name", "name", "policy")) == {
        ("Email", "Onboarding", "opt_out"),
        ("Email", "Product news", "opt_in"),
        ("Email", "Weekly digest", "double_opt_in"),
        ("Transactional email", "Receipts", "opt_out"),
    }


@pytest.mark.django_db
def test_beta_testers_list_holds_two_demo_contacts():
    demo_workspace_load()

    members = ContactList.objects.get(name="Beta testers").contacts.all()
    assert sorted(c.email for c in members) == ["ada@example.com", "grace@example.com"]
    assert Contact.objects.get(email="alan@example.com").first_name == "Alan"


@pytest.mark.django_db
def test_templates_are_stored_as_written_and_pass_validation():
    # The source is already in the form the sanitizer keeps, so what staff
    # see in the admin is what demo.py says.
    demo_workspace_load()

    for spec in TEMPLATES:
        template = Template.objects.get(name=spec["name"])
        assert sanitize_html(spec["html_body"]) == spec["html_body"]
        assert template.html_body == spec["html_body"]
        template.full_clean()


@pytest.mark.django_db
def test_welcome_email_greets_by_attribute_then_by_event_data_then_generically():
    demo_workspace_load()
    template = Template.objects.get(name="Welcome email")
    ada = Contact.objects.get(email="ada@example.com")
    newcomer = Contact(email="newcomer@example.com")

    email = get_backend("email")
    by_attribute = email.render(template, {**contact_context(ada), "event": {}})
    by_event = email.render(template, {**contact_context(newcomer), "event": {"firstName": "Nia"}})
    generic = email.render(template, {**contact_context(newcomer), "event": {}})

    assert by_attribute.subject == "Welcome to Acme, Ada!"
    assert "Hi Ada, thanks for signing up" in by_attribute.text
    assert by_event.subject == "Welcome to Acme, Nia!"
    assert "Hi Nia, thanks for signing up" in by_event.html
    assert generic.subject == "Welcome to Acme, there!"


@pytest.mark.django_db
def test_demo_api_key_is_made_once_and_works():
    first = demo_workspace_load()
    second = demo_workspace_load()

    assert first.api_key_raw
    assert api_key_authenticate(first.api_key_raw).name == "Demo key"
    assert second.api_key_raw is None


@pytest.mark.django_db
def test_load_demo_command_prints_the_key_only_when_made(capsys):
    call_command("load_demo")
    first = capsys.readouterr().out
    call_command("load_demo")
    second = capsys.readouterr().out

    assert "admin / waymark-demo" in first
    assert "export WAYMARK_API_KEY=wm_" in first
    assert "nothing changed" in second
    assert "wm_" not in second
    assert "create_api_key" in second


@pytest.mark.django_db(transaction=True)
def test_signup_runs_the_demo_welcome_series(smtp_server, run_worker):
    # Given the demo workspace
    demo_workspace_load()

    # When a newcomer signs up
    event_track(name="signed_up", email="newcomer@example.com", data={"firstName": "Nia"})
    run_worker()  # the job that hands new events to journeys
    scheduler_tick()
    run_worker()

    # Then the welcome email arrives, and the enrollment waits on the delay
    assert [m["Subject"] for m in smtp_server.messages] == ["Welcome to Acme, Nia!"]
    assert smtp_server.messages[0].envelope_recipients == ["newcomer@example.com"]
    enrollment = Enrollment.objects.get(contact__email="newcomer@example.com")
    assert enrollment.journey.name == "Welcome series"
    assert enrollment.state == Enrollment.State.WAITING
