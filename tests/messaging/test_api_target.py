"""POST /api/<medium>/target: one template to one user, through the sending pipeline."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from contacts.models import ApiKey, Contact
from contacts.services import api_key_create
from messaging.models import InAppMessage, Message
from messaging.services import messages_claim_due, messages_retry
from subscriptions.models import Channel
from subscriptions.services import subscription_set
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    MessageTypeFactory,
    TemplateFactory,
    medium_template,
)

# Sends commit before each hand-off: they run outside the test's transaction.
pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "/api/email/target"


@pytest.fixture
def ada(db):
    return ContactFactory(email="ada@example.com", attributes={"firstName": "Ada", "plan": "free"})


@pytest.fixture
def welcome(db):
    return TemplateFactory(
        subject="Hello {{ firstName }}",
        html_body="<p>Your plan: {{ plan }}. Order {{ event.order }}.</p>",
    )


def test_email_target_sends_through_the_pipeline_and_the_email_arrives(
    api_client, ada, welcome, smtp_server
):
    body = {
        "recipientEmail": "ada@example.com",
        "campaignId": welcome.pk,
        "dataFields": {"plan": "pro", "order": "A-17"},
        "metadata": {"source": "checkout"},
    }

    response = api_client.post(EMAIL, body, format="json")

    assert response.status_code == 200
    message = Message.objects.get()
    assert response.json() == {
        "msg": "Message sent.",
        "code": "Success",
        "params": {
            "messageId": str(message.pk),
            "status": "sent",
            "skipReason": "",
            "detail": "sent",
            "sendAt": None,
            "replayed": False,
        },
    }
    (email,) = smtp_server.messages
    assert email["To"] == "ada@example.com"
    assert email["Subject"] == "Hello Ada"
    # The request's data fields win over the contact's attributes, as in Iterable.
    assert "Your plan: pro. Order A-17." in email.get_body(("html",)).get_content()
    assert email["List-Unsubscribe"].strip().startswith("<http://localhost:8000/unsubscribe/")
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (message.origin, message.status, message.contact, message.template) == (
        "api",
        "sent",
        ada,
        welcome,
    )
    assert message.origin_id == ApiKey.objects.get(name="test integration").pk
    assert message.context == {
        "data": {"plan": "pro", "order": "A-17"},
        "metadata": {"source": "checkout"},
    }
    ada.refresh_from_db()
    assert ada.attributes == {"firstName": "Ada", "plan": "free"}  # a send changes no profile


def test_a_contact_unsubscribed_from_the_type_gets_a_skipped_message_and_no_email(
    api_client, ada, welcome, smtp_server
):
    subscription_set(
        contact=ada, message_type=welcome.message_type, status="unsubscribed", source="api"
    )

    response = api_client.post(
        EMAIL, {"recipientEmail": "ada@example.com", "campaignId": welcome.pk}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "Success"
    assert body["msg"] == "Message not sent: Unsubscribed from the message type."
    assert body["params"]["status"] == "skipped"
    assert body["params"]["skipReason"] == "message_type_unsubscribed"
    message = Message.objects.get()
    assert (message.status, message.skip_reason) == ("skipped", "message_type_unsubscribed")
    assert str(message.pk) == body["params"]["messageId"]
    assert smtp_server.messages == []


def test_an_unknown_email_is_created_for_an_email_send(api_client, welcome, smtp_server):
    response = api_client.post(
        EMAIL, {"recipientEmail": "New@Example.com", "campaignId": welcome.pk}, format="json"
    )

    assert response.json()["params"]["status"] == "sent"
    contact = Contact.objects.get()
    assert (contact.email, contact.user_id) == ("new@example.com", None)
    assert Message.objects.get().contact == contact
    assert smtp_server.messages[0]["To"] == "new@example.com"


def test_a_user_named_by_user_id_is_found(api_client, welcome, smtp_server):
    ContactFactory(email="bo@example.com", user_id="u-7")

    response = api_client.post(
        EMAIL, {"recipientUserId": "u-7", "campaignId": welcome.pk}, format="json"
    )

    assert response.json()["params"]["status"] == "sent"
    assert smtp_server.messages[0]["To"] == "bo@example.com"


def test_an_unknown_user_id_is_a_400_that_writes_nothing(api_client, welcome, smtp_server):
    response = api_client.post(
        EMAIL, {"recipientUserId": "nobody", "campaignId": welcome.pk}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "UnknownUserIdError"
    assert not Contact.objects.exists()
    assert not Message.objects.exists()


def test_an_unknown_email_is_not_created_for_an_sms_send(api_client, outbox):
    template = medium_template("sms", text_body="Your code is 1234.")

    response = api_client.post(
        "/api/sms/target",
        {"recipientEmail": "new@example.com", "campaignId": template.pk},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "UnknownEmailError"
    assert not Contact.objects.exists()
    assert not Message.objects.exists()
    assert outbox("sms") == []


def test_a_template_that_does_not_exist_is_a_400_that_writes_nothing(api_client, smtp_server):
    response = api_client.post(
        EMAIL, {"recipientEmail": "new@example.com", "campaignId": 999999}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "msg": "No template with id 999999.",
        "code": "BadParams",
        "params": None,
    }
    assert not Contact.objects.exists()
    assert not Message.objects.exists()


def test_a_template_of_another_medium_is_a_400_that_writes_nothing(api_client, ada, outbox):
    sms = medium_template("sms", text_body="Your code is 1234.")

    response = api_client.post(
        EMAIL, {"recipientEmail": "ada@example.com", "campaignId": sms.pk}, format="json"
    )

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "BadParams"
    assert "sms template, not a email one" in body["msg"]
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"recipientEmail": "ada@example.com"}, "BadParams"),
        ({"campaignId": "TEMPLATE"}, "BadParams"),
        ({"campaignId": "TEMPLATE", "recipientEmail": "not-an-email"}, "InvalidEmailAddressError"),
        ({"campaignId": "TEMPLATE", "recipientUserId": ""}, "BadParams"),
        ({"campaignId": 2**64, "recipientEmail": "ada@example.com"}, "BadParams"),
        ({"campaignId": "TEMPLATE", "recipientEmail": "a@x.test", "dataFields": [1]}, "BadParams"),
        ({"campaignId": "TEMPLATE", "recipientEmail": "a@x.test", "sendAt": "soon"}, "BadParams"),
        (
            {
                "campaignId": "TEMPLATE",
                "recipientEmail": "a@x.test",
                "sendAt": "2099-01-01 00:00:00",
            },
            "BadParams",
        ),
        (
            {
                "campaignId": "TEMPLATE",
                "recipientEmail": "a@x.test",
                "allowRepeatMarketingSends": 7,
            },
            "BadParams",
        ),
    ],
)
def test_a_malformed_request_is_a_400_that_writes_nothing(
    api_client, welcome, smtp_server, body, code
):
    if body.get("campaignId") == "TEMPLATE":
        body = {**body, "campaignId": welcome.pk}

    response = api_client.post(EMAIL, body, format="json")

    assert response.status_code == 400
    payload = response.json()
    assert (payload["code"], set(payload)) == (code, {"msg", "code", "params"})
    assert not Contact.objects.exists()
    assert not Message.objects.exists()
    assert smtp_server.messages == []


def test_a_request_repeated_with_its_idempotency_key_sends_once(
    api_client, ada, welcome, smtp_server
):
    body = {"recipientEmail": "ada@example.com", "campaignId": welcome.pk}

    first = api_client.post(EMAIL, body, format="json", HTTP_IDEMPOTENCY_KEY="order-17-receipt")
    again = api_client.post(EMAIL, body, format="json", HTTP_IDEMPOTENCY_KEY="order-17-receipt")
    other = api_client.post(EMAIL, body, format="json", HTTP_IDEMPOTENCY_KEY="order-18-receipt")

    assert len(smtp_server.messages) == 2
    assert Message.objects.count() == 2
    first_params, again_params = first.json()["params"], again.json()["params"]
    assert again_params["messageId"] == first_params["messageId"]
    assert (again_params["status"], again_params["replayed"]) == ("sent", True)
    assert again.json()["msg"] == "Message sent."
    assert other.json()["params"]["messageId"] != first_params["messageId"]


def test_without_an_idempotency_key_each_request_is_a_send_of_its_own(
    api_client, ada, welcome, smtp_server
):
    body = {"recipientEmail": "ada@example.com", "campaignId": welcome.pk}

    api_client.post(EMAIL, body, format="json")
    api_client.post(EMAIL, body, format="json")

    assert len(smtp_server.messages) == 2


def test_the_same_key_on_another_api_key_is_another_send(api_client, ada, welcome, smtp_server):
    _, raw = api_key_create(name="billing service")
    billing = APIClient()
    billing.credentials(HTTP_API_KEY=raw)
    body = {"recipientEmail": "ada@example.com", "campaignId": welcome.pk}

    api_client.post(EMAIL, body, format="json", HTTP_IDEMPOTENCY_KEY="1")
    billing.post(EMAIL, body, format="json", HTTP_IDEMPOTENCY_KEY="1")

    assert len(smtp_server.messages) == 2


def test_an_idempotency_key_reused_for_another_send_is_a_400_that_sends_nothing(
    api_client, ada, welcome, smtp_server
):
    other = TemplateFactory(message_type=welcome.message_type)
    api_client.post(
        EMAIL,
        {"recipientEmail": "ada@example.com", "campaignId": welcome.pk},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )

    response = api_client.post(
        EMAIL,
        {"recipientEmail": "ada@example.com", "campaignId": other.pk},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )

    assert response.status_code == 400
    assert response.json()["code"] == "BadParams"
    assert Message.objects.count() == 1
    assert len(smtp_server.messages) == 1


def test_an_idempotency_key_too_long_is_a_400(api_client, ada, welcome, smtp_server):
    response = api_client.post(
        EMAIL,
        {"recipientEmail": "ada@example.com", "campaignId": welcome.pk},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k" * 256,
    )

    assert (response.status_code, response.json()["code"]) == (400, "BadParams")
    assert not Message.objects.exists()


def test_send_at_schedules_the_send_for_the_retry_pass(api_client, ada, welcome, smtp_server):
    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)

    response = api_client.post(
        EMAIL,
        {
            "recipientEmail": "ada@example.com",
            "campaignId": welcome.pk,
            "sendAt": at.strftime("%Y-%m-%d %H:%M:%S"),
        },
        format="json",
    )

    body = response.json()
    assert body["msg"] == f"Message scheduled for {at.isoformat()}."
    assert (body["params"]["status"], body["params"]["sendAt"]) == ("queued", at.isoformat())
    message = Message.objects.get()
    assert (message.status, message.next_attempt_at, message.attempts) == ("queued", at, 0)
    assert smtp_server.messages == []

    with time_machine.travel(at - timedelta(minutes=1)):
        assert messages_claim_due(enqueue=False) is None
    with time_machine.travel(at):
        claim = messages_claim_due(enqueue=False)
        assert messages_retry(message_ids=claim.message_ids, token=claim.token) == {"sent": 1}

    assert len(smtp_server.messages) == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 1)


def test_a_scheduled_send_checks_consent_when_it_is_due(api_client, ada, welcome, smtp_server):
    at = datetime.now(UTC) + timedelta(hours=3)
    api_client.post(
        EMAIL,
        {"recipientEmail": "ada@example.com", "campaignId": welcome.pk, "sendAt": at.isoformat()},
        format="json",
    )
    subscription_set(
        contact=ada, channel=welcome.message_type.channel, status="unsubscribed", source="api"
    )

    with time_machine.travel(at + timedelta(seconds=1)):
        claim = messages_claim_due(enqueue=False)
        assert messages_retry(message_ids=claim.message_ids, token=claim.token) == {"skipped": 1}

    assert Message.objects.get().skip_reason == "channel_unsubscribed"
    assert smtp_server.messages == []


def test_a_send_at_in_the_past_sends_now(api_client, ada, welcome, smtp_server):
    response = api_client.post(
        EMAIL,
        {
            "recipientEmail": "ada@example.com",
            "campaignId": welcome.pk,
            "sendAt": "2020-01-01 09:00:00",
        },
        format="json",
    )

    assert response.json()["params"]["status"] == "sent"
    assert len(smtp_server.messages) == 1


def test_a_repeat_marketing_send_can_be_refused(api_client, ada, welcome, smtp_server):
    body = {"recipientEmail": "ada@example.com", "campaignId": welcome.pk}
    first = api_client.post(EMAIL, body, format="json")

    again = api_client.post(EMAIL, {**body, "allowRepeatMarketingSends": False}, format="json")

    assert again.status_code == 200
    params = again.json()["params"]
    assert (params["status"], params["skipReason"]) == ("skipped", "repeat_marketing_send")
    assert params["messageId"] == first.json()["params"]["messageId"]
    assert Message.objects.count() == 1
    assert len(smtp_server.messages) == 1


def test_a_transactional_template_is_sent_again_whatever_the_repeat_flag(
    api_client, ada, smtp_server
):
    receipts = TemplateFactory(
        message_type=MessageTypeFactory(
            channel=ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
        )
    )
    body = {"recipientEmail": "ada@example.com", "campaignId": receipts.pk}

    api_client.post(EMAIL, body, format="json")
    api_client.post(EMAIL, {**body, "allowRepeatMarketingSends": False}, format="json")

    assert Message.objects.filter(status="sent").count() == 2
    assert len(smtp_server.messages) == 2


def test_a_delivery_refused_for_now_says_when_it_is_tried_again(
    api_client, ada, welcome, smtp_server
):
    smtp_server.refuse_with = "451 4.3.0 Try again later"

    response = api_client.post(
        EMAIL, {"recipientEmail": "ada@example.com", "campaignId": welcome.pk}, format="json"
    )

    body = response.json()
    message = Message.objects.get()
    assert body["code"] == "Success"
    assert body["params"]["status"] == "queued"
    assert body["params"]["sendAt"] == message.next_attempt_at.isoformat()
    assert body["msg"].startswith("Delivery failed for now; it will be tried again at")


def test_a_template_that_cannot_render_is_answered_as_failed(api_client, ada, smtp_server):
    broken = TemplateFactory(subject="Hi {% if %}")

    response = api_client.post(
        EMAIL, {"recipientEmail": "ada@example.com", "campaignId": broken.pk}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["msg"] == "Message could not be sent: render failed."
    assert body["params"]["status"] == "failed"
    assert Message.objects.get().status == "failed"
    assert smtp_server.messages == []


def test_sms_target_writes_to_the_sms_outbox(api_client, outbox):
    template = medium_template("sms", text_body="Hi {{ firstName }}, code {{ code }}.")
    ContactFactory(user_id="u-1", phone="+14155550123", attributes={"firstName": "Ada"})

    response = api_client.post(
        "/api/sms/target",
        {"recipientUserId": "u-1", "campaignId": template.pk, "dataFields": {"code": "4321"}},
        format="json",
    )

    assert response.json()["params"]["status"] == "sent"
    (line,) = outbox("sms")
    assert (line["to"], line["text"]) == ("+14155550123", "Hi Ada, code 4321.")


def test_a_contact_without_a_phone_gets_a_skipped_sms(api_client, outbox):
    template = medium_template("sms", text_body="Your code is 1234.")
    ContactFactory(email="ada@example.com")

    response = api_client.post(
        "/api/sms/target",
        {"recipientEmail": "ada@example.com", "campaignId": template.pk},
        format="json",
    )

    params = response.json()["params"]
    assert (params["status"], params["skipReason"]) == ("skipped", "no_address")
    assert outbox("sms") == []


def test_in_app_target_stores_the_message_for_the_app_and_creates_an_unknown_email(api_client):
    template = medium_template("in_app", title="Hi", text_body="Your {{ item }} shipped.")

    response = api_client.post(
        "/api/inApp/target",
        {
            "recipientEmail": "ada@example.com",
            "campaignId": template.pk,
            "dataFields": {"item": "book"},
        },
        format="json",
    )

    assert response.json()["params"]["status"] == "sent"
    entry = InAppMessage.objects.get()
    assert (entry.contact.email, entry.title, entry.body) == (
        "ada@example.com",
        "Hi",
        "Your book shipped.",
    )


def test_an_in_app_message_sent_by_the_api_is_what_the_app_then_fetches(api_client):
    template = medium_template(
        "in_app", title="Hi {{ firstName }}", text_body="Your order shipped."
    )
    ContactFactory(user_id="u-1", email=None, attributes={"firstName": "Ada"})

    sent = api_client.post(
        "/api/inApp/target", {"recipientUserId": "u-1", "campaignId": template.pk}, format="json"
    )
    inbox = api_client.get("/api/inApp/getMessages", {"userId": "u-1", "count": 10})

    (message,) = inbox.json()["inAppMessages"]
    assert message["messageId"] == sent.json()["params"]["messageId"]
    assert message["campaignId"] == template.pk
    assert message["customPayload"]["title"] == "Hi Ada"
    assert message["read"] is False


@pytest.mark.parametrize(
    "path", ["/api/push/target", "/api/whatsApp/target", "/api/webPush/target"]
)
def test_the_other_media_refuse_a_template_of_another_medium(api_client, ada, welcome, path):
    response = api_client.post(
        path, {"recipientEmail": "ada@example.com", "campaignId": welcome.pk}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (400, "BadParams")
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("path", "medium"),
    [
        ("/api/push/target", "push"),
        ("/api/whatsApp/target", "whatsapp"),
        ("/api/webPush/target", "web_push"),
    ],
)
def test_the_other_media_send_their_own_templates(api_client, ada, path, medium, outbox):
    template = medium_template(
        medium, title="Hi", text_body="Hello.", link_url="https://acme.test/"
    )

    response = api_client.post(
        path, {"recipientEmail": "ada@example.com", "campaignId": template.pk}, format="json"
    )

    # Ada has no phone and no device: the pipeline skips, and says so.
    params = response.json()["params"]
    assert (response.status_code, params["status"], params["skipReason"]) == (
        200,
        "skipped",
        "no_address",
    )
    assert Message.objects.get().medium == medium


def test_a_client_side_key_may_not_send(db, welcome):
    _, raw = api_key_create(name="iOS app", scope=ApiKey.Scope.CLIENT)
    client = APIClient()
    client.credentials(HTTP_API_KEY=raw)

    response = client.post(
        EMAIL, {"recipientEmail": "ada@example.com", "campaignId": welcome.pk}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (403, "Forbidden")
    assert not Message.objects.exists()
    assert not Contact.objects.exists()


def test_a_missing_key_is_a_401(db, welcome):
    response = APIClient().post(
        EMAIL, {"recipientEmail": "ada@example.com", "campaignId": welcome.pk}, format="json"
    )

    assert (response.status_code, response.json()["code"]) == (401, "BadApiKey")
    assert not Message.objects.exists()
