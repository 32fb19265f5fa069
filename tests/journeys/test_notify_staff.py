"""The notify-staff step: an email to staff about the contact, at a real SMTP server."""

from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.utils import timezone

from journeys.models import Enrollment, NotifyStaffStep, StepRun
from journeys.services.exchange import journey_export, journey_import
from journeys.services.runner import enrollments_advance
from journeys.services.scheduling import enrollments_claim_due
from subscriptions.services import subscription_set
from tests.conftest import SmtpRecorder
from tests.databases import ROW_BY_ROW
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    EnrollmentFactory,
    JourneyFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def journey():
    return JourneyFactory(name="Big accounts")


@pytest.fixture
def sales(db):
    group = Group.objects.create(name="Sales")
    for username, active in (("sam", True), ("sue", True), ("old", False)):
        UserFactory(username=username, is_active=active).groups.add(group)
    UserFactory(username="nomail", email="").groups.add(group)
    UserFactory(username="other")  # not in the group
    return group


@pytest.fixture
def smtp_server_later(smtp_down, settings):
    """Starts a real SMTP server, when called, on the port that was down."""
    controllers = []

    def start():
        handler = SmtpRecorder()
        smtp_down.release()
        controller = Controller(handler, hostname="127.0.0.1", port=settings.EMAIL_PORT)
        controller.start()
        controllers.append(controller)
        return handler

    yield start
    for controller in controllers:
        controller.stop()


def notify(journey, position=1, **fields):
    return NotifyStaffStep.objects.create(
        journey=journey, key=f"notify-{position}", position=position, **fields
    )


def run_due(later=timedelta(0)):
    claim = enrollments_claim_due(now=timezone.now() + later, enqueue=False)
    assert claim is not None
    enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)


def run_from(first, contact, trigger_data=None):
    EnrollmentFactory(
        journey=first.journey, contact=contact, current_step=first, trigger_data=trigger_data or {}
    )
    run_due()
    return Enrollment.objects.get(journey=first.journey, contact=contact)


def runs(step):
    return list(StepRun.objects.filter(step=step).order_by("id").values_list("outcome", "detail"))


def test_staff_get_an_email_about_the_contact_with_a_link_to_their_page(
    journey, sales, smtp_server, settings
):
    settings.SITE_URL = "https://waymark.example.com"
    step = notify(
        journey,
        recipients="lead@example.com, ops@example.com\nlead@example.com",
        staff_group=sales,
        subject="{{ contact.first_name }} ({{ event.plan }}) is ready for a call",
        body="{{ contact.email }} asked for a demo of the {{ event.plan }} plan.",
    )
    contact = ContactFactory(email="ada@example.com", attributes={"firstName": "Ada"})

    enrollment = run_from(step, contact, trigger_data={"plan": "enterprise"})

    (email,) = smtp_server.messages
    assert sorted(email.envelope_recipients) == [
        "lead@example.com",
        "ops@example.com",
        "sam@example.com",
        "sue@example.com",
    ]
    assert email["Subject"] == "Ada (enterprise) is ready for a call"
    text = email.get_content().replace("\r\n", "\n")
    assert text.startswith("ada@example.com asked for a demo of the enterprise plan.\n")
    assert f"https://waymark.example.com/admin/contacts/contact/{contact.pk}/change/" in text
    assert "Journey “Big accounts”, step “notify-1”." in text
    assert enrollment.state == Enrollment.State.COMPLETED
    assert runs(step) == [("completed", "notified 4 staff member(s)")]


def test_the_contacts_consent_does_not_matter(journey, smtp_server):
    contact = ContactFactory(blocklisted=True)
    channel = ChannelFactory(medium="email")
    subscription_set(contact=contact, channel=channel, status="unsubscribed", source="one_click")
    step = notify(journey, recipients="lead@example.com")

    run_from(step, contact)

    (email,) = smtp_server.messages
    assert email.envelope_recipients == ["lead@example.com"]
    assert contact.email not in email.envelope_recipients


def test_what_the_contact_wrote_cannot_reach_settings_or_add_headers(journey, smtp_server):
    step = notify(
        journey,
        recipients="lead@example.com",
        subject="New lead: {{ contact.last_name }}",
        body="Key: [{{ settings.SECRET_KEY }}] Name: {{ contact.last_name }}",
    )
    contact = ContactFactory(attributes={"lastName": "Lovelace\r\nBcc: victim@example.com"})

    run_from(step, contact)

    (email,) = smtp_server.messages
    assert email.envelope_recipients == ["lead@example.com"]
    assert email["Subject"] == "New lead: Lovelace Bcc: victim@example.com"
    assert email["Bcc"] is None
    assert email.get_content().startswith("Key: [] Name: Lovelace")


def test_a_batch_of_contacts_is_sent_over_one_connection(journey, smtp_server):
    step = notify(journey, recipients="lead@example.com", subject="{{ contact.email }}")
    contacts = [ContactFactory() for _ in range(3)]
    for contact in contacts:
        EnrollmentFactory(journey=journey, contact=contact, current_step=step)

    run_due()

    assert sorted(m["Subject"] for m in smtp_server.messages) == sorted(c.email for c in contacts)
    assert len({m.peer for m in smtp_server.messages}) == 1


def test_a_mail_server_that_is_down_is_tried_again_then_the_contact_goes_on(journey, smtp_down):
    step = notify(journey, recipients="lead@example.com")

    enrollment = run_from(step, ContactFactory())

    ((outcome, detail),) = runs(step)
    assert outcome == "retry" and detail.startswith("try 1 of 4 failed: ")
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.current_step_id) == ("waiting", step.pk)
    for _ in range(3):
        run_due(later=timedelta(hours=1))
    assert [outcome for outcome, _ in runs(step)] == ["retry", "retry", "retry", "completed"]
    assert runs(step)[-1][1].startswith("not sent: failed after 4 tries: ")
    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.COMPLETED


def test_once_the_mail_server_is_back_the_note_goes_out(journey, smtp_down, smtp_server_later):
    step = notify(journey, recipients="lead@example.com")
    run_from(step, ContactFactory())

    server = smtp_server_later()
    run_due(later=timedelta(minutes=2))

    assert [outcome for outcome, _ in runs(step)] == ["retry", "completed"]
    assert [m.envelope_recipients for m in server.messages] == [["lead@example.com"]]


def test_a_group_with_no_one_in_it_sends_nothing_and_says_so(journey, smtp_server):
    step = notify(journey, staff_group=Group.objects.create(name="Empty"))

    run_from(step, ContactFactory())

    assert smtp_server.messages == []
    assert runs(step) == [("completed", "no one to notify: not sent")]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"recipients": ""}, "recipients", "Give an address, or choose a group"),
        ({"recipients": "lead@example.com, not-an-address"}, "recipients", "not-an-address"),
        ({"subject": "{% if %}"}, "subject", "Template error"),
        ({"body": "{{ contact.email|nosuchfilter }}"}, "body", "Template error"),
    ],
)
def test_settings_that_cannot_work_are_refused(journey, fields, field, message):
    step = NotifyStaffStep(journey=journey, key="notify", position=1, recipients="a@example.com")
    for name, value in fields.items():
        setattr(step, name, value)

    with pytest.raises(ValidationError) as caught:
        step.full_clean()

    assert message in " ".join(caught.value.message_dict[field])


def test_the_document_names_the_group(journey, sales):
    notify(journey, recipients="lead@example.com", staff_group=sales, subject="Lead")
    document = journey_export(journey=journey)

    copy = journey_import(document=document, name="Big accounts 2")

    assert document["steps"][0] == {
        "key": "notify-1",
        "type": "notify_staff",
        "recipients": "lead@example.com",
        "subject": "Lead",
        "staff_group": "Sales",
    }
    assert journey_export(journey=copy) == {**document, "name": "Big accounts 2"}


@pytest.mark.postgresql(reason=ROW_BY_ROW)
def test_a_batch_costs_the_same_queries_for_2_4_or_8_contacts(journey, sales, smtp_server):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    step = notify(journey, recipients="lead@example.com", staff_group=sales)

    def queries_to_advance(contacts):
        for contact in ContactFactory.create_batch(contacts):
            EnrollmentFactory(journey=journey, contact=contact, current_step=step)
        claim = enrollments_claim_due(enqueue=False)
        with CaptureQueriesContext(connection) as queries:
            counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)
        assert counts == {"completed": contacts}
        return len(queries)

    queries_to_advance(1)
    q2, q4, q8 = (queries_to_advance(n) for n in (2, 4, 8))

    # The group's members, the journey and the tries so far are read once for
    # the batch, and its moves are written together.
    assert q2 == q4 == q8
