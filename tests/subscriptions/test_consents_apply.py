"""subscriptions.services.bulk.consents_apply: consent for many contacts at once,
by subscription_set's rules, with a ledger entry per change."""

import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from subscriptions.models import ConsentRecord, MessageType, Subscription
from subscriptions.services.batch import Catalogue, ConsentBatch
from subscriptions.services.bulk import ConsentAsk, consents_apply
from subscriptions.signals import subscription_changed, subscriptions_changed
from tests.factories import ChannelFactory, ContactFactory, MessageTypeFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

SUB, UNSUB, PENDING = "subscribed", "unsubscribed", "pending"


def status_of(contact, message_type=None, channel=None):
    row = Subscription.objects.filter(
        contact=contact, message_type=message_type, channel=channel
    ).first()
    return row.status if row else None


def test_an_opt_in_type_is_subscribed_and_an_unsubscribe_recorded_with_the_source():
    # Given an opt-in digest and a marketing SMS channel
    digest = MessageTypeFactory(policy=MessageType.Policy.OPT_IN)
    sms = ChannelFactory(name="SMS", medium="sms")
    ada, bob = ContactFactory.create_batch(2)
    SubscriptionFactory(contact=bob, message_type=digest, status=SUB)

    # When an import asks: Ada yes to the digest and no to SMS, Bob yes to the digest
    applied = consents_apply(
        asks=[
            ConsentAsk(ada.pk, "message_type", digest.pk, True),
            ConsentAsk(ada.pk, "channel", sms.pk, False),
            ConsentAsk(bob.pk, "message_type", digest.pk, True),
        ],
        source="import",
        note="CSV import #7",
    )

    # Then Ada's two choices are stored and recorded; Bob's changes nothing
    assert applied.changes == 2 and applied.refused == {}
    assert status_of(ada, message_type=digest) == SUB
    assert status_of(ada, channel=sms) == UNSUB
    assert set(
        ConsentRecord.objects.values_list("contact", "message_type", "channel", "action", "source")
    ) == {
        (ada.pk, digest.pk, None, "subscribed", "import"),
        (ada.pk, None, sms.pk, "unsubscribed", "import"),
    }
    assert set(ConsentRecord.objects.values_list("note", flat=True)) == {"CSV import #7"}


def test_double_opt_in_asks_for_confirmation_and_again_once_the_link_expired(settings):
    confirmed = MessageTypeFactory(policy=MessageType.Policy.DOUBLE_OPT_IN)
    new, waiting, expired, done = ContactFactory.create_batch(4)
    SubscriptionFactory(contact=waiting, message_type=confirmed, status=PENDING)
    SubscriptionFactory(
        contact=expired,
        message_type=confirmed,
        status=PENDING,
        updated_at=timezone.now() - settings.WAYMARK_CONFIRMATION_MAX_AGE - timedelta(days=1),
    )
    SubscriptionFactory(contact=done, message_type=confirmed, status=SUB)
    changed = []

    def listener(sender, subscription, previous_status, **kwargs):
        changed.append((subscription.contact_id, subscription.status, previous_status))

    subscription_changed.connect(listener)
    try:
        applied = consents_apply(
            asks=[
                ConsentAsk(contact.pk, "message_type", confirmed.pk, True)
                for contact in (new, waiting, expired, done)
            ],
            source="import",
            note="CSV import #1",
        )
    finally:
        subscription_changed.disconnect(listener)

    assert applied.changes == 2
    assert sorted(changed) == sorted([(new.pk, PENDING, None), (expired.pk, PENDING, PENDING)])
    notes = dict(ConsentRecord.objects.values_list("contact", "note"))
    assert notes == {
        new.pk: "CSV import #1",
        expired.pk: "CSV import #1 The earlier confirmation link had expired.",
    }
    assert status_of(waiting, message_type=confirmed) == PENDING
    assert status_of(done, message_type=confirmed) == SUB


def test_unsubscribing_from_a_transactional_channel_is_refused_and_the_rest_applies():
    receipts = ChannelFactory(name="Receipts", kind="transactional")
    news = MessageTypeFactory()
    ada = ContactFactory()

    applied = consents_apply(
        asks=[
            ConsentAsk(ada.pk, "channel", receipts.pk, False),
            ConsentAsk(ada.pk, "message_type", news.pk, False),
        ],
        source="import",
    )

    assert list(applied.refused) == [0]
    assert "transactional" in applied.refused[0]
    assert status_of(ada, channel=receipts) is None
    assert status_of(ada, message_type=news) == UNSUB


def test_asks_for_one_contact_twice_apply_in_order():
    news = MessageTypeFactory(policy=MessageType.Policy.OPT_IN)
    ada = ContactFactory()

    applied = consents_apply(
        asks=[
            ConsentAsk(ada.pk, "message_type", news.pk, True),
            ConsentAsk(ada.pk, "message_type", news.pk, False),
        ],
        source="import",
    )

    assert applied.changes == 2
    assert status_of(ada, message_type=news) == UNSUB
    assert list(ConsentRecord.objects.order_by("id").values_list("action", flat=True)) == [
        "subscribed",
        "unsubscribed",
    ]


POLICIES = [MessageType.Policy.OPT_OUT, MessageType.Policy.OPT_IN, MessageType.Policy.DOUBLE_OPT_IN]


@pytest.mark.parametrize(
    "policy,current,receive",
    list(itertools.product(POLICIES, (None, SUB, PENDING, UNSUB), (True, False))),
)
def test_every_policy_status_and_choice_ends_as_consent_batch_would(policy, current, receive):
    # The same ask given to ConsentBatch (what subscription_set and the API use)
    # and to consents_apply, for two contacts alike, ends in the same state.
    message_type = MessageTypeFactory(policy=policy)
    one, two = ContactFactory.create_batch(2)
    if current:
        for contact in (one, two):
            SubscriptionFactory(contact=contact, message_type=message_type, status=current)
    batch = ConsentBatch(contact_ids=[one.pk], catalogue=Catalogue(), source="import", note="")
    batch.load()
    batch.set_message_type(one.pk, Catalogue().message_types[message_type.pk], receive=receive)
    expected_changes, _ = batch.save()

    applied = consents_apply(
        asks=[ConsentAsk(two.pk, "message_type", message_type.pk, receive)], source="import"
    )

    assert applied.changes == expected_changes
    assert status_of(two, message_type=message_type) == status_of(one, message_type=message_type)
    actions = ConsentRecord.objects.values_list("action", flat=True)
    assert list(actions.filter(contact=two)) == list(actions.filter(contact=one))


def test_n_or_2n_asks_take_the_same_queries():
    digest = MessageTypeFactory(policy=MessageType.Policy.OPT_IN)
    sms = ChannelFactory(name="SMS", medium="sms")
    few, many = ContactFactory.create_batch(5), ContactFactory.create_batch(10)
    # Some asks change a stored row, others create one.
    for contact in few[:2] + many[:4]:
        SubscriptionFactory(contact=contact, message_type=digest, status=UNSUB)
    heard = []

    def listener(sender, changes, **kwargs):
        heard.append(len(changes))

    subscriptions_changed.connect(listener)

    def asks(contacts):
        return [ConsentAsk(c.pk, "message_type", digest.pk, True) for c in contacts] + [
            ConsentAsk(c.pk, "channel", sms.pk, False) for c in contacts
        ]

    with CaptureQueriesContext(connection) as five:
        consents_apply(asks=asks(few), source="import")
    with CaptureQueriesContext(connection) as ten:
        consents_apply(asks=asks(many), source="import")

    subscriptions_changed.disconnect(listener)
    assert len(ten.captured_queries) == len(five.captured_queries)
    assert heard == [10, 20]
    assert Subscription.objects.filter(message_type=digest, status=SUB).count() == 15
    assert ConsentRecord.objects.filter(source="import").count() == 30
