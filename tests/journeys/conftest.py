import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.factories import (
    ConditionStepFactory,
    ContactFactory,
    DelayStepFactory,
    ExitStepFactory,
    JourneyFactory,
    SendMessageStepFactory,
    TemplateFactory,
    UserFactory,
)


@pytest.fixture
def staff_client(client, db):
    """The test client, signed in as a superuser."""
    client.force_login(UserFactory(is_superuser=True))
    return client


@pytest.fixture
def migrator(request):
    """The database migrated back to the test module's BEFORE, for a migration
    test to fill and migrate forward; migrated to the latest state afterwards."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(request.module.BEFORE)
    yield executor
    executor = MigrationExecutor(connection)
    executor.migrate(latest)


@pytest.fixture
def welcome_series(db):
    """The welcome journey: email, wait two days, "created a project?" → exit, else nudge."""
    journey = JourneyFactory(name="Welcome series", trigger_event_name="signed_up")
    welcome = SendMessageStepFactory(
        journey=journey,
        position=1,
        key="welcome",
        template=TemplateFactory(
            name="Welcome email",
            subject="Welcome, {{ contact.first_name }}!",
            html_body="<p>Hi {{ contact.first_name }}, glad you joined.</p>",
        ),
    )
    delay = DelayStepFactory(journey=journey, position=2, key="wait", amount=2, unit="days")
    done = ExitStepFactory(journey=journey, position=5, key="done")
    nudge = SendMessageStepFactory(
        journey=journey,
        position=4,
        key="nudge",
        template=TemplateFactory(
            name="Nudge email",
            message_type=welcome.template.message_type,
            subject="Need a hand, {{ contact.first_name }}?",
            html_body="<p>Create your first project in two clicks.</p>",
        ),
    )
    condition = ConditionStepFactory(
        journey=journey,
        position=3,
        key="created-project",
        kind="event_since_entry",
        event_name="project_created",
        connections={"yes": done, "no": nudge},
    )
    journey.step_map = {
        "welcome": welcome,
        "wait": delay,
        "condition": condition,
        "nudge": nudge,
        "done": done,
    }
    return journey


@pytest.fixture
def nia(db):
    return ContactFactory(email="nia@example.com", attributes={"firstName": "Nia"})
