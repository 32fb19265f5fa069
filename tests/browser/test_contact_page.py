"""Staff reading a contact's page in a real browser."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from journeys.models import Enrollment, StepRun
from messaging.models import Message
from tests.factories import (
    ContactFactory,
    DelayStepFactory,
    EnrollmentFactory,
    JourneyFactory,
    MessageFactory,
    SendMessageStepFactory,
    StepRunFactory,
    TemplateFactory,
    kept_as_sent,
)

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT = "/tmp/contact-page.png"


def test_the_timeline_shows_a_sent_email_and_a_journey_passage(admin_page, live_server):
    contact = ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})
    template = TemplateFactory(
        name="Welcome",
        subject="Welcome, {{ firstName }}!",
        html_body=(
            "<h1>Hi {{ firstName }},</h1><p>Your {{ event.plan }} plan is ready.</p>"
            '<p><a href="https://waymark.test/start">Get started</a></p>'
        ),
    )
    journey = JourneyFactory(name="Onboarding")
    send = SendMessageStepFactory(journey=journey, name="Welcome email", template=template)
    wait = DelayStepFactory(journey=journey, name="Wait two days")
    entered = timezone.now() - timedelta(hours=1)
    enrollment = EnrollmentFactory(
        contact=contact, journey=journey, entered_at=entered, current_step=wait,
        state=Enrollment.State.WAITING,
    )  # fmt: skip
    message = kept_as_sent(MessageFactory(
        contact=contact, template=template, status=Message.Status.SENT,
        sent_at=entered, subject="Welcome, Ada!", context={"event": {"plan": "pro"}},
        origin=Message.Origin.JOURNEY, origin_id=enrollment.pk,
    ))  # fmt: skip
    StepRunFactory(
        enrollment=enrollment, step=send, sequence=0, message=message, started_at=entered
    )
    StepRunFactory(
        enrollment=enrollment, step=wait, sequence=1, outcome=StepRun.Outcome.WAITING,
        started_at=entered + timedelta(seconds=1),
    )  # fmt: skip

    admin_page.goto(f"{live_server.url}{reverse('admin:contacts_contact_changelist')}")
    admin_page.get_by_role("link", name="Page", exact=True).click()

    timeline = admin_page.locator("#contact-timeline")
    expect(timeline.locator(".message-subject")).to_have_text("Welcome, Ada!")
    timeline.locator(".message-content summary").click()
    email = admin_page.frame_locator("#contact-timeline iframe[sandbox]")
    expect(email.get_by_role("heading")).to_have_text("Hi Ada,")
    expect(email.get_by_text("Your pro plan is ready.")).to_be_visible()
    passage = timeline.locator(".timeline-journey")
    expect(passage.get_by_role("link", name="Onboarding")).to_be_visible()
    expect(passage.locator(".passage-path li")).to_have_count(2)
    expect(passage.locator(".passage-path li").first).to_contain_text(
        "Welcome email → Continued, message sent"
    )
    expect(passage.locator(".passage-path li").last).to_contain_text("Wait two days → Waiting")
    expect(admin_page.locator("#contact-attributes")).to_contain_text("firstName")
    admin_page.screenshot(path=SCREENSHOT, full_page=True)
