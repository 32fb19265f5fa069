import pytest
from django.urls import reverse

from subscriptions.models import Channel, ConsentRecord, MessageType, Subscription
from tests.admin_pages import result_rows
from tests.databases import ESTIMATED_COUNT
from tests.factories import (
    ChannelFactory,
    ConsentRecordFactory,
    ContactFactory,
    MessageTypeFactory,
    SubscriptionFactory,
    UserFactory,
)


def make_channels(n):
    for _ in range(n):
        channel = ChannelFactory(name=f"Channel {Channel.objects.count()}")
        MessageTypeFactory(channel=channel)


@pytest.mark.parametrize(
    ("model", "make_rows", "queries"),
    [
        (Channel, make_channels, 5),
        (MessageType, lambda n: MessageTypeFactory.create_batch(n, frequency_limit=2), 6),
        pytest.param(
            Subscription,
            lambda n: SubscriptionFactory.create_batch(n),
            5,
            marks=pytest.mark.postgresql(reason=ESTIMATED_COUNT),
        ),
        pytest.param(
            ConsentRecord,
            lambda n: ConsentRecordFactory.create_batch(n, actor=UserFactory()),
            5,
            marks=pytest.mark.postgresql(reason=ESTIMATED_COUNT),
        ),
    ],
    ids=["channel", "message type", "subscription", "consent record"],
)
def test_changelist_queries_do_not_grow_with_rows(
    admin_client, django_assert_num_queries, model, make_rows, queries
):
    url = reverse(f"admin:subscriptions_{model._meta.model_name}_changelist")
    make_rows(3)
    rows = model.objects.count()

    with django_assert_num_queries(queries):
        assert len(result_rows(admin_client.get(url))) == rows
    make_rows(3)
    with django_assert_num_queries(queries):
        assert len(result_rows(admin_client.get(url))) == rows + 3


def test_message_type_changelist_shows_channel_policy_and_frequency_cap(admin_client):
    MessageTypeFactory(
        name="Newsletter",
        policy=MessageType.Policy.DOUBLE_OPT_IN,
        frequency_limit=2,
        frequency_period=MessageType.Period.WEEK,
    )

    (row,) = result_rows(admin_client.get(reverse("admin:subscriptions_messagetype_changelist")))

    assert "Newsletter" in row
    assert "Marketing email" in row
    assert "Double opt-in" in row
    assert "2 per week" in row


def test_consent_records_cannot_be_added_in_the_admin(admin_client):
    changelist = admin_client.get(reverse("admin:subscriptions_consentrecord_changelist"))
    add_url = reverse("admin:subscriptions_consentrecord_add")

    response = admin_client.post(add_url, {"contact": ContactFactory().pk, "action": "subscribed"})

    assert add_url not in changelist.content.decode()
    assert response.status_code == 403
    assert not ConsentRecord.objects.exists()


def test_consent_records_cannot_be_changed_in_the_admin(admin_client):
    record = ConsentRecordFactory(action=ConsentRecord.Action.SUBSCRIBED)
    url = reverse("admin:subscriptions_consentrecord_change", args=[record.pk])

    page = admin_client.get(url)
    response = admin_client.post(url, {"action": "unsubscribed", "source": "admin"})

    assert page.status_code == 200  # viewable
    assert 'name="_save"' not in page.content.decode()
    assert response.status_code == 403
    record.refresh_from_db()
    assert record.action == ConsentRecord.Action.SUBSCRIBED


def test_consent_records_cannot_be_deleted_in_the_admin(admin_client):
    record = ConsentRecordFactory()

    single = admin_client.post(
        reverse("admin:subscriptions_consentrecord_delete", args=[record.pk]), {"post": "yes"}
    )
    bulk = admin_client.post(
        reverse("admin:subscriptions_consentrecord_changelist"),
        {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"},
    )

    assert single.status_code == 403
    assert bulk.status_code == 200  # the changelist, with no delete action to run
    assert ConsentRecord.objects.filter(pk=record.pk).exists()


def test_staff_changing_a_subscription_is_recorded_in_the_consent_ledger(admin_client, admin_user):
    # Given a contact subscribed to a newsletter
    subscription = SubscriptionFactory(status=Subscription.Status.SUBSCRIBED)
    url = reverse("admin:subscriptions_subscription_change", args=[subscription.pk])

    # When staff unsubscribe them, saying why
    response = admin_client.post(url, {"status": "unsubscribed", "note": "Asked by phone"})

    # Then the subscription changes and the ledger says who did it and why
    assert response.status_code == 302
    subscription.refresh_from_db()
    assert (subscription.status, subscription.source) == ("unsubscribed", "admin")
    record = ConsentRecord.objects.get(contact=subscription.contact)
    assert (record.action, record.source, record.actor, record.note) == (
        "unsubscribed",
        "admin",
        admin_user,
        "Asked by phone",
    )


def test_staff_adding_a_subscription_is_recorded_in_the_consent_ledger(admin_client, admin_user):
    contact = ContactFactory()
    message_type = MessageTypeFactory(policy=MessageType.Policy.OPT_IN)

    response = admin_client.post(
        reverse("admin:subscriptions_subscription_add"),
        {"contact": contact.pk, "message_type": message_type.pk, "status": "subscribed"},
    )

    assert response.status_code == 302
    subscription = Subscription.objects.get(contact=contact)
    assert (subscription.message_type, subscription.status) == (message_type, "subscribed")
    record = ConsentRecord.objects.get(contact=contact)
    assert (record.action, record.actor) == ("subscribed", admin_user)


def test_contacts_cannot_be_unsubscribed_from_a_transactional_channel(admin_client):
    receipts = ChannelFactory(name="Receipts", kind=Channel.Kind.TRANSACTIONAL)
    contact = ContactFactory()

    response = admin_client.post(
        reverse("admin:subscriptions_subscription_add"),
        {"contact": contact.pk, "channel": receipts.pk, "status": "unsubscribed"},
    )

    assert response.status_code == 200
    assert "contacts cannot unsubscribe from it" in response.content.decode()
    assert not Subscription.objects.exists()
    assert not ConsentRecord.objects.exists()


@pytest.mark.parametrize("model", ["channel", "messagetype", "subscription", "consentrecord"])
def test_staff_without_permissions_cannot_see_a_changelist(client, db, model):
    client.force_login(UserFactory(is_staff=True, is_superuser=False))

    response = client.get(reverse(f"admin:subscriptions_{model}_changelist"))

    assert response.status_code == 403


def test_every_subscriptions_change_page_loads(admin_client, admin_user):
    ConsentRecordFactory(actor=admin_user)
    SubscriptionFactory()

    for model in (Channel, MessageType, Subscription, ConsentRecord):
        name = f"admin:subscriptions_{model._meta.model_name}"
        response = admin_client.get(reverse(f"{name}_change", args=[model.objects.first().pk]))

        assert (model, response.status_code) == (model, 200)


def test_staff_can_turn_click_tracking_off_for_a_message_type(admin_client):
    from django.urls import reverse

    from subscriptions.models import MessageType
    from tests.factories import ChannelFactory

    response = admin_client.post(
        reverse("admin:subscriptions_messagetype_add"),
        {
            "channel": ChannelFactory().pk,
            "name": "Receipts-like news",
            "policy": "opt_out",
            "frequency_period": "week",
            "track_opens": "on",
        },
    )

    assert response.status_code == 302
    message_type = MessageType.objects.get(name="Receipts-like news")
    assert (message_type.track_opens, message_type.track_clicks) == (True, False)
