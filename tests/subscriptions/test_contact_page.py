"""Subscriptions on the contact page, and the consent ledger's CSV download."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from subscriptions.models import ConsentRecord, MessageType, Subscription
from tests.factories import (
    ChannelFactory,
    ConsentRecordFactory,
    ContactFactory,
    MessageTypeFactory,
    SubscriptionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def page(client, contact):
    response = client.get(reverse("admin:contacts_contact_page", args=[contact.pk]))
    assert response.status_code == 200
    return response.content.decode()


def export_url(contact):
    return reverse("admin:subscriptions_consentrecord_export", args=[contact.pk])


def rows_of(response):
    assert response.streaming
    content = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(content)))


def staff_with(*codenames):
    user = UserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def row_of(body, name):
    start = body.index(f"<td>&nbsp;&nbsp;{name}</td>")
    return body[start : body.index("</tr>", start)]


def test_the_page_shows_each_message_type_s_policy_and_the_contact_s_state(admin_client):
    contact = ContactFactory()
    email = ChannelFactory(name="Email")
    MessageTypeFactory(channel=email, name="Tips", policy=MessageType.Policy.OPT_OUT)
    news = MessageTypeFactory(channel=email, name="News", policy=MessageType.Policy.OPT_IN)
    MessageTypeFactory(channel=email, name="Offers", policy=MessageType.Policy.OPT_IN)
    digest = MessageTypeFactory(
        channel=email, name="Digest", policy=MessageType.Policy.DOUBLE_OPT_IN
    )
    SubscriptionFactory(contact=contact, message_type=news, source="preference_center")
    SubscriptionFactory(contact=contact, message_type=digest, status=Subscription.Status.PENDING)

    body = page(admin_client, contact)

    tips = row_of(body, "Tips")
    assert "<td>Opt-out</td>" in tips and "Never chose (opt-out: receives it)" in tips
    assert "<td>Yes</td>" in tips
    news_row = row_of(body, "News")
    assert "<td>Opt-in</td>" in news_row and "<td>Subscribed</td>" in news_row
    assert "(Preference center)" in news_row and "<td>Yes</td>" in news_row
    offers = row_of(body, "Offers")
    assert "<td>Never subscribed</td>" in offers
    assert "No: never subscribed to an opt-in message type" in offers
    digest_row = row_of(body, "Digest")
    assert "<td>Double opt-in</td>" in digest_row
    assert "<td>Awaiting confirmation</td>" in digest_row
    assert "No: double opt-in not confirmed" in digest_row


def test_a_channel_unsubscribe_blocks_every_type_of_the_channel(admin_client):
    contact = ContactFactory()
    sms = ChannelFactory(name="Texts", medium="sms")
    MessageTypeFactory(channel=sms, name="Alerts")
    SubscriptionFactory(
        contact=contact,
        message_type=None,
        channel=sms,
        status=Subscription.Status.UNSUBSCRIBED,
        source="one_click",
    )

    body = page(admin_client, contact)

    assert "<td>Unsubscribed</td>" in body
    assert "No: unsubscribed from the channel" in row_of(body, "Alerts")


def test_the_consent_ledger_downloads_as_csv_oldest_first(admin_client):
    contact = ContactFactory()
    news = MessageTypeFactory(channel=ChannelFactory(name="Email"), name="News")
    first = ConsentRecordFactory(
        contact=contact, message_type=news, source="api", ip_address="203.0.113.9"
    )
    ConsentRecordFactory(
        contact=contact,
        message_type=news,
        action=ConsentRecord.Action.UNSUBSCRIBED,
        source="admin",
        actor=UserFactory(username="grace"),
        note='=HYPERLINK("http://evil.test")',
    )
    ConsentRecord.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=1))
    ConsentRecordFactory()  # someone else's
    first.refresh_from_db()

    response = admin_client.get(export_url(contact))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="consent-{contact.pk}.csv"'
    rows = rows_of(response)
    assert rows[0] == [
        "time", "action", "channel", "message type", "source", "staff member", "ip address",
        "user agent", "note",
    ]  # fmt: skip
    assert rows[1] == [
        first.created_at.isoformat(), "Subscribed", "Email", "News", "API", "",
        "203.0.113.9", "", "",
    ]  # fmt: skip
    assert rows[2][1:] == [
        "Unsubscribed", "Email", "News", "Admin", "grace", "", "",
        "'=HYPERLINK(\"http://evil.test\")",
    ]  # fmt: skip
    assert len(rows) == 3


def test_the_page_links_to_the_download(admin_client):
    contact = ContactFactory()

    assert f'href="{export_url(contact)}"' in page(admin_client, contact)


def test_the_download_needs_the_permission_to_view_the_ledger(client):
    contact = ContactFactory()
    ConsentRecordFactory(contact=contact)
    client.force_login(staff_with("view_contact", "view_subscription"))

    body = page(client, contact)
    response = client.get(export_url(contact))

    assert response.status_code == 403
    assert export_url(contact) not in body
    assert 'id="contact-subscriptions"' in body


def test_the_download_needs_the_permission_to_view_contacts(client):
    contact = ContactFactory()
    client.force_login(staff_with("view_consentrecord"))

    assert client.get(export_url(contact)).status_code == 403


def test_the_download_of_an_unknown_contact_is_not_found(admin_client):
    assert admin_client.get(export_url(ContactFactory.build(pk=999999))).status_code == 404


def test_the_download_only_reads(admin_client):
    contact = ContactFactory()

    assert admin_client.post(export_url(contact)).status_code == 405
