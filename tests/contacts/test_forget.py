"""Forgetting a contact (POST /api/users/forget, the admin action) and deleting one:
what is erased, what stays anonymous, and that a forgotten address is never sent to again."""

import hashlib

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.test import APIClient

from contacts.models import ApiKey, Contact, DeviceToken, Event, ForgottenAddress, ListMembership
from contacts.services import api_key_create, events_dispatch_all
from contacts.services.forget import contact_delete, contact_forget
from journeys.models import Enrollment, StepRun
from journeys.services.scheduling import scheduler_tick
from messaging.models import (
    Engagement,
    InAppMessage,
    Message,
    RejectedAddress,
    SentContent,
    Suppression,
)
from messaging.services import message_send
from subscriptions.models import ConsentRecord, Subscription
from tests.admin_pages import result_rows
from tests.factories import (
    ConsentRecordFactory,
    ContactFactory,
    DeviceTokenFactory,
    EnrollmentFactory,
    EventFactory,
    JourneyFactory,
    ListMembershipFactory,
    MessageFactory,
    SendMessageStepFactory,
    SubscriptionFactory,
    TemplateFactory,
    UserFactory,
    medium_template,
)

FORGET = "/api/users/forget"


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def envelope(response):
    body = response.json()
    assert set(body) == {"msg", "code", "params"}
    return body


@pytest.fixture
def nia(db):
    """A contact with something in every table that keeps personal data."""
    contact = ContactFactory(
        email="nia@example.com",
        user_id="app-7",
        phone="+14155550123",
        timezone="Europe/Paris",
        locale="fr",
        attributes={"firstName": "Nia", "plan": "pro"},
    )
    EventFactory(contact=contact, name="purchase", data={"card": "4242"})
    DeviceTokenFactory(contact=contact)
    ListMembershipFactory(contact=contact)
    SubscriptionFactory(contact=contact)
    ConsentRecordFactory(contact=contact, ip_address="203.0.113.9", user_agent="Firefox")
    sent = MessageFactory(
        contact=contact,
        status=Message.Status.SENT,
        subject="Welcome, Nia!",
        context={"event": {"plan": "pro"}},
        links=["https://example.com/?u=nia"],
        error="earlier: 450 nia@example.com busy",
    )
    MessageFactory(contact=contact, status=Message.Status.QUEUED)
    Engagement.objects.create(
        message=sent,
        contact=contact,
        kind=Engagement.Kind.CLICKED,
        source=Engagement.Source.TRACKING,
        occurred_at=sent.created_at,
        url="https://example.com/?u=nia",
        details={"ip": "203.0.113.9"},
    )
    InAppMessage.objects.create(contact=contact, message=sent, body="Hi Nia")
    SentContent.objects.create(
        message=sent, stored_at=sent.created_at, data=SentContent.pack({"html": "<p>Hi Nia</p>"})
    )
    Suppression.objects.create(address="nia@example.com", reason="hard_bounce")
    RejectedAddress.objects.create(medium="sms", address="+14155550123", reason="STOP")
    enrollment = EnrollmentFactory(
        contact=contact, trigger_data={"plan": "pro"}, last_error="nia@example.com refused"
    )
    StepRun.objects.create(
        enrollment=enrollment,
        sequence=1,
        outcome=StepRun.Outcome.RETRY,
        error="550 nia@example.com unknown",
        started_at=sent.created_at,
        finished_at=sent.created_at,
    )
    return contact


def assert_forgotten(contact_id):
    """Nothing personal is left about the contact; its history stays, anonymous."""
    contact = Contact.objects.get(pk=contact_id)
    assert contact.email is None
    assert contact.user_id.startswith("forgotten:") and "app-7" not in contact.user_id
    assert (contact.phone, contact.timezone, contact.locale) == ("", "", "")
    assert contact.attributes == {}
    assert contact.blocklisted
    for model in (Event, DeviceToken, ListMembership, Subscription, ConsentRecord, InAppMessage):
        assert not model.objects.filter(contact_id=contact_id).exists(), model
    assert not SentContent.objects.filter(message__contact_id=contact_id).exists()
    assert not Suppression.objects.filter(address="nia@example.com").exists()
    assert not RejectedAddress.objects.filter(address="+14155550123").exists()
    messages = Message.objects.filter(contact_id=contact_id)
    assert messages.count() == 2  # kept for metrics
    for kept in messages.values("to_address", "subject", "context", "links", "error"):
        assert kept == {"to_address": "", "subject": "", "context": {}, "links": [], "error": ""}
    assert set(messages.values_list("status", "skip_reason")) == {
        ("sent", ""),
        ("skipped", "suppressed"),  # was queued: never sent now
    }
    engagement = Engagement.objects.get(message__contact_id=contact_id)
    assert (engagement.kind, engagement.url, engagement.details) == ("clicked", "", {})
    enrollment = Enrollment.objects.get(contact_id=contact_id)
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "contact forgotten")
    assert (enrollment.trigger_data, enrollment.last_error) == ({}, "")
    assert StepRun.objects.get(enrollment=enrollment).error == ""
    assert set(ForgottenAddress.objects.values_list("kind", "digest")) == {
        ("email", sha256("nia@example.com")),
        ("phone", sha256("+14155550123")),
    }


# --- POST /api/users/forget ----------------------------------------------------


def test_forget_by_email_erases_the_user_and_keeps_anonymous_history(api_client, nia):
    response = api_client.post(FORGET, {"email": "Nia@Example.com"}, format="json")

    assert response.status_code == 200
    assert envelope(response) == {
        "msg": "The user is forgotten.",
        "code": "Success",
        "params": None,
    }
    assert_forgotten(nia.pk)
    entry = ForgottenAddress.objects.get(kind="email")
    assert (entry.source, entry.requested_by) == ("api", "API key “test integration”")


def test_forget_by_user_id(api_client, nia):
    response = api_client.post(FORGET, {"userId": "app-7"}, format="json")

    assert (response.status_code, envelope(response)["code"]) == (200, "Success")
    assert_forgotten(nia.pk)


def test_forgetting_twice_is_harmless(api_client, nia):
    api_client.post(FORGET, {"email": "nia@example.com"}, format="json")

    response = api_client.post(FORGET, {"email": "nia@example.com"}, format="json")

    assert (response.status_code, envelope(response)["code"]) == (200, "Success")
    assert ForgottenAddress.objects.count() == 2
    assert Contact.objects.filter(pk=nia.pk).exists()


def test_an_unknown_email_is_recorded_as_forgotten_without_creating_a_user(api_client, db):
    response = api_client.post(FORGET, {"email": "never@example.com"}, format="json")

    assert (response.status_code, envelope(response)["code"]) == (200, "Success")
    assert not Contact.objects.exists()
    assert list(ForgottenAddress.objects.values_list("kind", "digest")) == [
        ("email", sha256("never@example.com"))
    ]


def test_an_unknown_user_id_is_a_400_that_writes_nothing(api_client, nia):
    response = api_client.post(FORGET, {"userId": "nobody"}, format="json")

    assert response.status_code == 400
    assert envelope(response) == {
        "msg": "No user with that userId.",
        "code": "BadParams",
        "params": None,
    }
    assert not ForgottenAddress.objects.exists()
    assert Contact.objects.get(pk=nia.pk).email == "nia@example.com"


@pytest.mark.parametrize(
    "body, code",
    [({}, "BadParams"), ({"email": "nia"}, "InvalidEmailAddressError")],
    ids=["nobody named", "not an email"],
)
def test_a_malformed_request_is_a_400_that_erases_nothing(api_client, nia, body, code):
    response = api_client.post(FORGET, body, format="json")

    assert (response.status_code, envelope(response)["code"]) == (400, code)
    assert not ForgottenAddress.objects.exists()
    assert Event.objects.filter(contact=nia).exists()
    assert ConsentRecord.objects.filter(contact=nia).exists()


def test_a_client_side_key_may_not_forget_users(nia):
    _, raw = api_key_create(name="iOS app", scope=ApiKey.Scope.CLIENT)
    client = APIClient()
    client.credentials(HTTP_API_KEY=raw)

    response = client.post(FORGET, {"email": "nia@example.com"}, format="json")

    assert (response.status_code, envelope(response)["code"]) == (403, "Forbidden")
    assert Contact.objects.get(pk=nia.pk).email == "nia@example.com"


# --- a forgotten address is never sent to again --------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_forgotten_address_recreated_through_track_gets_its_next_email_skipped(
    api_client, smtp_server, run_worker
):
    journey = JourneyFactory(trigger_event_name="signed_up")
    SendMessageStepFactory(journey=journey, position=1)
    ContactFactory(email="nia@example.com")

    def sign_up():
        body = {"email": "nia@example.com", "eventName": "signed_up"}
        assert api_client.post("/api/events/track", body, format="json").status_code == 200
        events_dispatch_all()
        scheduler_tick()
        run_worker()

    sign_up()
    assert [m.envelope_recipients for m in smtp_server.messages] == [["nia@example.com"]]

    # Given Nia asked to be forgotten
    assert api_client.post(FORGET, {"email": "nia@example.com"}, format="json").status_code == 200
    # When her address comes back through the API and the journey starts again
    sign_up()

    # Then a new contact holds the address, and its email is skipped, not sent
    again = Contact.objects.get(email="nia@example.com")
    message = Message.objects.get(contact=again)
    assert (message.status, message.skip_reason) == ("skipped", "suppressed")
    assert len(smtp_server.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_a_forgotten_phone_number_is_sent_no_sms():
    contact_forget(contact=ContactFactory(phone="+14155550123"), source="api")
    again = ContactFactory(phone="+14155550123")

    result = message_send(
        contact=again,
        template=medium_template("sms", text_body="Hi"),
        idempotency_key="sms-1",
        origin="api",
    )

    assert (result.message.status, result.message.skip_reason) == ("skipped", "suppressed")


@pytest.mark.django_db(transaction=True)
def test_other_contacts_are_still_sent_to(smtp_server):
    contact_forget(contact=ContactFactory(email="nia@example.com"), source="api")
    ada = ContactFactory(email="ada@example.com")

    result = message_send(
        contact=ada, template=TemplateFactory(), idempotency_key="ada-1", origin="api"
    )

    assert result.message.status == "sent"
    assert [m.envelope_recipients for m in smtp_server.messages] == [["ada@example.com"]]


# --- the admin ---------------------------------------------------------------------


def staff_who_may(client, *codenames):
    user = UserFactory()
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def test_the_admin_action_asks_for_confirmation_then_forgets(client, nia):
    staff = staff_who_may(client, "view_contact", "delete_contact")
    url = reverse("admin:contacts_contact_changelist")
    action = {"action": "forget_selected", "_selected_action": [nia.pk]}

    asked = client.post(url, action)

    assert asked.status_code == 200
    assert "Forget 1 contact?" in asked.content.decode()
    assert Contact.objects.get(pk=nia.pk).email == "nia@example.com"  # nothing yet

    done = client.post(url, {**action, "confirmed": "yes"})

    assert done.status_code == 302
    (message,) = get_messages(done.wsgi_request)
    assert str(message).startswith("Forgot 1 contact(s)")
    assert_forgotten(nia.pk)
    entry = ForgottenAddress.objects.get(kind="email")
    assert (entry.source, entry.requested_by) == ("admin", staff.username)


def test_staff_without_delete_permission_cannot_forget(client, nia):
    staff_who_may(client, "view_contact", "change_contact")
    url = reverse("admin:contacts_contact_changelist")

    page = client.get(url)
    attempt = client.post(
        url, {"action": "forget_selected", "_selected_action": [nia.pk], "confirmed": "yes"}
    )

    assert "forget_selected" not in page.content.decode()
    assert attempt.status_code in (200, 302)
    assert not ForgottenAddress.objects.exists()
    assert Contact.objects.get(pk=nia.pk).email == "nia@example.com"


def test_staff_may_delete_a_contact_with_consent_records_and_messages(client, nia):
    # Given staff who may delete contacts, but not consent records or messages
    staff_who_may(client, "view_contact", "delete_contact")
    url = reverse("admin:contacts_contact_delete", args=[nia.pk])

    page = client.get(url)
    response = client.post(url, {"post": "yes"})

    assert page.status_code == 200
    assert "permission to delete" not in page.content.decode()
    assert response.status_code == 302
    assert not Contact.objects.filter(pk=nia.pk).exists()
    for model in (ConsentRecord, Subscription, Message, Engagement, InAppMessage, Enrollment):
        assert not model.objects.exists(), model
    assert not Suppression.objects.exists()
    # Deleting is not forgetting: the address may come back and be sent to.
    assert not ForgottenAddress.objects.exists()


def test_staff_may_delete_selected_contacts_from_the_list(client, nia):
    staff_who_may(client, "view_contact", "delete_contact")
    other = ContactFactory()
    ConsentRecordFactory(contact=other)
    url = reverse("admin:contacts_contact_changelist")
    action = {"action": "delete_selected", "_selected_action": [nia.pk, other.pk]}

    response = client.post(url, {**action, "post": "yes"})

    assert response.status_code == 302
    assert not Contact.objects.exists()
    assert not ConsentRecord.objects.exists()


def test_contact_delete_removes_the_contact_and_records_no_digest(nia):
    deleted = contact_delete(contact=nia, source="api")

    assert deleted == nia.pk
    assert not Contact.objects.exists()
    assert not Message.objects.exists()
    assert not ForgottenAddress.objects.exists()


def test_staff_find_a_forgotten_address_by_typing_it(admin_client, db):
    contact_forget(contact=ContactFactory(email="nia@example.com"), source="admin")
    contact_forget(contact=ContactFactory(email="ada@example.com"), source="admin")
    url = reverse("admin:contacts_forgottenaddress_changelist")

    found = result_rows(admin_client.get(url, {"q": "Nia@example.com"}))

    assert len(found) == 1
    assert sha256("nia@example.com") in found[0]
    assert "nia@example.com" not in admin_client.get(url).content.decode()
