"""An integrator's day, driven through an Iterable client library over real HTTP.

The `iterable-api` package is pointed at Waymark's live server with nothing
changed but its base URL, exactly as an integrator would: create a user,
subscribe them to a list, trigger a journey, see the email arrive at a real
SMTP server, unsubscribe them through the API, and see the next send skipped.
"""

import pytest
from iterable import Iterable
from iterable.exceptions import AuthorizationError

from contacts.models import Contact, ListMembership
from contacts.services import api_key_create, events_dispatch_all
from journeys.models import Journey
from journeys.services.scheduling import scheduler_tick
from messaging.models import Message
from subscriptions.models import ConsentRecord, ConsentSource
from tests.factories import (
    JourneyFactory,
    MessageTypeFactory,
    SendMessageStepFactory,
    TemplateFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)


def advance(run_worker):
    """One pass of the scheduler, then the workers."""
    events_dispatch_all()
    scheduler_tick()
    run_worker()


@pytest.fixture
def welcome_journey(db):
    newsletter = MessageTypeFactory(name="Newsletter")
    template = TemplateFactory(
        name="Newsletter welcome",
        message_type=newsletter,
        subject="Welcome, {{ contact.first_name }}!",
        html_body=(
            '<p>Hi {{ contact.first_name }}.</p><a href="{{ links.unsubscribe }}">Unsubscribe</a>'
        ),
    )
    journey = JourneyFactory(
        name="Newsletter welcome",
        state=Journey.State.LIVE,
        trigger_type="api",  # started by triggerWorkflow
        reentry=Journey.Reentry.AFTER_EXIT,
    )
    SendMessageStepFactory(journey=journey, key="welcome", position=1, template=template)
    return journey


def test_an_iterable_client_drives_waymark_from_signup_to_unsubscribe(
    live_server, smtp_server, run_worker, welcome_journey
):
    _, key = api_key_create(name="Shop backend")
    api = Iterable(key, base_uri=live_server.url)
    newsletter = welcome_journey.steps.get().template.message_type

    # Given a user created through the API
    api.users.update(email="nia@example.com", data_fields={"firstName": "Nia"})
    assert Contact.objects.get(email="nia@example.com").attributes == {"firstName": "Nia"}

    # When the integrator subscribes her to a new list and triggers the journey
    list_id = api.lists.create("Newsletter readers").data["listId"]
    subscribed = api.lists.add_subscribers(list_id, [{"email": "nia@example.com"}])
    assert subscribed.data["successCount"] == 1
    triggered = api.workflows.trigger_workflow(welcome_journey.pk, email="nia@example.com")
    assert triggered.data["code"] == "Success"
    advance(run_worker)

    # Then the welcome email arrives, and her profile shows the list
    assert [m["Subject"] for m in smtp_server.messages] == ["Welcome, Nia!"]
    assert smtp_server.messages[0].envelope_recipients == ["nia@example.com"]
    user = api.users.get(email="nia@example.com").data["user"]
    assert user["dataFields"]["emailListIds"] == [list_id]
    assert ListMembership.objects.filter(contact__email="nia@example.com").count() == 1

    # When she is unsubscribed from the newsletter through the API
    api.users.update_subscriptions("nia@example.com", unsubscribed_message_type_ids=[newsletter.pk])
    user = api.users.get(email="nia@example.com").data["user"]
    assert user["dataFields"]["unsubscribedMessageTypeIds"] == [newsletter.pk]
    # and the journey is triggered again
    api.workflows.trigger_workflow(welcome_journey.pk, email="nia@example.com")
    advance(run_worker)

    # Then no second email is sent: the send is recorded as skipped for her choice
    assert len(smtp_server.messages) == 1
    second = Message.objects.order_by("created_at").last()
    assert (second.status, second.skip_reason) == (
        Message.Status.SKIPPED,
        Message.SkipReason.MESSAGE_TYPE_UNSUBSCRIBED,
    )
    # and the ledger says the API did it, with which key
    record = ConsentRecord.objects.get(message_type=newsletter)
    assert record.source == ConsentSource.API
    assert "Shop backend" in record.note


def test_a_wrong_key_is_refused_as_iterable_refuses_it(live_server):
    api = Iterable("wm_not-a-key", base_uri=live_server.url)

    with pytest.raises(AuthorizationError) as refused:
        api.users.get(email="nia@example.com")

    assert refused.value.args[0]["code"] == "BadApiKey"
