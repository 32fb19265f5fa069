"""Random consent histories, then a send of every message type to every contact.

Hypothesis draws a history of what happens to a few contacts over time —
choices through subscription_set from every source, double opt-in
confirmations, channel unsubscribes and resubscribes, policy and channel-kind
changes through the services (allowed or refused), blocklisting, suppressions
added and removed — and applies it to the real services. `Oracle` replays the
same history on a plain model written here from the documented rules. Then:

- every change was accepted or refused as the oracle says; a refused one
  changed nothing; each accepted subscription change wrote exactly one
  ConsentRecord and each no-op none;
- every message sent is one the oracle allows, every message it allows is
  sent (and arrives at a real SMTP server), and every skip carries the
  oracle's reason.

message_send refuses to run inside a transaction (it commits the `sending`
mark before delivery), so examples cannot be rolled back: they run in a
hypothesis.extra.django.TransactionTestCase, which empties the tables of
`available_apps` after every example; each example checks that it starts
from empty tables.
"""

from dataclasses import dataclass, field
from types import SimpleNamespace

from aiosmtpd.controller import Controller
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TransactionTestCase

from contacts.models import Contact
from messaging.models import Message, Suppression, Template
from messaging.services import message_send
from subscriptions.models import Channel, ConsentRecord, ConsentSource, MessageType, Subscription
from subscriptions.services import (
    ConsentError,
    channel_save,
    message_type_save,
    subscription_set,
)
from tests.conftest import SmtpRecorder, free_port, point_email_at

MARKETING, TRANSACTIONAL = "marketing", "transactional"
OPT_OUT, OPT_IN, DOUBLE_OPT_IN = "opt_out", "opt_in", "double_opt_in"
SUBSCRIBED, PENDING, UNSUBSCRIBED = "subscribed", "pending", "unsubscribed"
SENT = "sent"

CONTACTS = ("ada", "bob", "cy")
# channel: its kind at the start
CHANNELS = {"newsletters": MARKETING, "service": TRANSACTIONAL}
# message type: (channel, policy at the start)
MESSAGE_TYPES = {
    "tips": ("newsletters", OPT_OUT),
    "news": ("newsletters", OPT_IN),
    "digest": ("newsletters", DOUBLE_OPT_IN),
    "notices": ("service", OPT_OUT),
}

# Outcomes of one step of the history.
CHANGED, UNCHANGED, REFUSED = "changed", "unchanged", "refused"


# --- the history --------------------------------------------------------------------


@dataclass(frozen=True)
class TypeChoice:
    contact: str
    message_type: str
    status: str
    source: str


@dataclass(frozen=True)
class Confirmation:
    """The contact follows the double opt-in link (for whatever type)."""

    contact: str
    message_type: str


@dataclass(frozen=True)
class ChannelChoice:
    contact: str
    channel: str
    status: str
    source: str


@dataclass(frozen=True)
class PolicyChange:
    message_type: str
    policy: str


@dataclass(frozen=True)
class KindChange:
    channel: str
    kind: str


@dataclass(frozen=True)
class Blocklisting:
    contact: str
    blocklisted: bool


@dataclass(frozen=True)
class Suppressing:
    contact: str
    suppressed: bool


AGAIN = "again"  # in a drawn history: the previous consent choice, made again


def repeat_previous_choices(history):
    """Replace each AGAIN by the consent choice before it (dropped if none)."""
    resolved, previous = [], None
    for event in history:
        if event == AGAIN:
            event = previous
        if isinstance(event, TypeChoice | Confirmation | ChannelChoice):
            previous = event
        if event is not None:
            resolved.append(event)
    return resolved


contacts = st.sampled_from(CONTACTS)
statuses = st.sampled_from(Subscription.Status.values)
sources = st.sampled_from(ConsentSource.values)
choices = st.one_of(
    st.builds(TypeChoice, contacts, st.sampled_from(list(MESSAGE_TYPES)), statuses, sources),
    st.builds(Confirmation, contacts, st.sampled_from(list(MESSAGE_TYPES))),
    st.builds(ChannelChoice, contacts, st.sampled_from(list(CHANNELS)), statuses, sources),
)
changes = st.one_of(
    st.builds(
        PolicyChange,
        st.sampled_from(list(MESSAGE_TYPES)),
        st.sampled_from(MessageType.Policy.values),
    ),
    st.builds(KindChange, st.sampled_from(list(CHANNELS)), st.sampled_from(Channel.Kind.values)),
    st.builds(Blocklisting, contacts, st.booleans()),
    st.builds(Suppressing, contacts, st.booleans()),
)
# Consent choices are most of what happens; repeating one makes the no-op
# changes (which must write no consent record) common.
events = st.one_of(choices, choices, st.just(AGAIN), changes)
histories = st.lists(events, min_size=10, max_size=40).map(repeat_previous_choices)


# --- the oracle -------------------------------------------------------------------


@dataclass
class Oracle:
    """The rules as documented, over plain dictionaries. Nothing here calls Waymark."""

    kind: dict = field(default_factory=lambda: dict(CHANNELS))
    policy: dict = field(
        default_factory=lambda: {name: policy for name, (_, policy) in MESSAGE_TYPES.items()}
    )
    type_status: dict = field(default_factory=dict)  # (contact, message type) -> status
    channel_status: dict = field(default_factory=dict)  # (contact, channel) -> status
    blocklisted: set = field(default_factory=set)
    suppressed: set = field(default_factory=set)

    def apply(self, event) -> str:
        if isinstance(event, TypeChoice):
            return self._choose(event.contact, event.status, message_type=event.message_type)
        if isinstance(event, Confirmation):
            return self._choose(
                event.contact, SUBSCRIBED, message_type=event.message_type, confirmed=True
            )
        if isinstance(event, ChannelChoice):
            return self._choose(event.contact, event.status, channel=event.channel)
        if isinstance(event, PolicyChange):
            return self._change_policy(event.message_type, event.policy)
        if isinstance(event, KindChange):
            return self._change_kind(event.channel, event.kind)
        if isinstance(event, Blocklisting):
            (self.blocklisted.add if event.blocklisted else self.blocklisted.discard)(event.contact)
            return UNCHANGED
        (self.suppressed.add if event.suppressed else self.suppressed.discard)(event.contact)
        return UNCHANGED

    def _choose(self, contact, status, *, message_type=None, channel=None, confirmed=False):
        # Contacts are never offered an unsubscribe on a transactional channel,
        # and only message types await confirmation.
        scope_channel = channel or MESSAGE_TYPES[message_type][0]
        if self.kind[scope_channel] == TRANSACTIONAL and status == UNSUBSCRIBED:
            return REFUSED
        if channel and status == PENDING:
            return REFUSED
        # A double opt-in subscription counts once confirmed by link; asking
        # again once confirmed changes nothing.
        if (
            message_type
            and self.policy[message_type] == DOUBLE_OPT_IN
            and status == SUBSCRIBED
            and not confirmed
            and self.type_status.get((contact, message_type)) != SUBSCRIBED
        ):
            status = PENDING
        if channel:
            store, key = self.channel_status, (contact, channel)
        else:
            store, key = self.type_status, (contact, message_type)
        if store.get(key) == status:
            return UNCHANGED
        store[key] = status
        return CHANGED

    def _change_policy(self, message_type, policy):
        before = self.policy[message_type]
        channel = MESSAGE_TYPES[message_type][0]
        if policy != OPT_OUT and self.kind[channel] == TRANSACTIONAL:
            return REFUSED  # transactional channels take opt-out types only
        if before != OPT_OUT and policy == OPT_OUT:
            return REFUSED  # it would reach everyone who never subscribed
        self.policy[message_type] = policy
        return UNCHANGED if before == policy else CHANGED

    def _change_kind(self, channel, kind):
        types = [name for name, (of, _) in MESSAGE_TYPES.items() if of == channel]
        if kind == TRANSACTIONAL and any(self.policy[name] != OPT_OUT for name in types):
            return REFUSED  # its opt-in types would reach contacts who never subscribed
        before, self.kind[channel] = self.kind[channel], kind
        return UNCHANGED if before == kind else CHANGED

    def choices(self) -> dict:
        """{(contact, channel or message type): status}, as stored_choices() reads them."""
        return {**self.channel_status, **self.type_status}

    def outcome(self, contact, message_type) -> str:
        """ "sent", or the skip reason: blocklist, then consent, then suppression."""
        channel = MESSAGE_TYPES[message_type][0]
        type_status = self.type_status.get((contact, message_type))
        policy = self.policy[message_type]
        if contact in self.blocklisted:
            return "blocklisted"
        # Unsubscribes always count, whatever the channel's kind is now.
        if self.channel_status.get((contact, channel)) == UNSUBSCRIBED:
            return "channel_unsubscribed"
        if type_status == UNSUBSCRIBED:
            return "message_type_unsubscribed"
        if policy == OPT_IN and type_status != SUBSCRIBED:
            return "not_opted_in"
        if policy == DOUBLE_OPT_IN and type_status != SUBSCRIBED:
            return "not_confirmed" if type_status == PENDING else "not_opted_in"
        if contact in self.suppressed:
            return "suppressed"
        return SENT


# --- the test -----------------------------------------------------------------------


def example_tables():
    """The tables an example may write to: those of the available apps."""
    return [
        model._meta.db_table
        for app in ConsentHistoryTests.available_apps
        for model in django_apps.get_app_config(app).get_models(include_auto_created=True)
    ]


def rows_left():
    """{table: rows} for the tables an example may write to that are not empty."""
    with connection.cursor() as cursor:
        counts = {}
        for table in example_tables():
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return {table: count for table, count in counts.items() if count}


def stored_choices() -> dict:
    """{(contact, channel or message type): status} as stored in Subscription rows."""
    rows = Subscription.objects.values_list(
        "contact__email", "channel__name", "message_type__name", "status"
    )
    return {
        (email.split("@")[0], channel or message_type): status
        for email, channel, message_type, status in rows
    }


class ConsentHistoryTests(TransactionTestCase):
    # Emptied after every example: only these apps' tables, without recreating
    # content types and permissions each time.
    available_apps = ["contacts", "subscriptions", "messaging", "journeys"]

    def _fixture_teardown(self):
        # Django empties the tables with TRUNCATE, which costs PostgreSQL some
        # 0.2 s per example; DELETE of the few rows an example wrote costs next
        # to nothing. One transaction, foreign keys checked at its end.
        if connection.vendor != "postgresql":
            return super()._fixture_teardown()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for table in example_tables():
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.smtp = SmtpRecorder()
        cls.smtp_controller = Controller(cls.smtp, hostname="127.0.0.1", port=free_port())
        cls.smtp_controller.start()
        email = SimpleNamespace()
        point_email_at(email, cls.smtp_controller.port)
        cls.email_settings = override_settings(**vars(email))
        cls.email_settings.enable()

    @classmethod
    def tearDownClass(cls):
        cls.email_settings.disable()
        cls.smtp_controller.stop()
        super().tearDownClass()

    def build_world(self):
        """The channels, message types (with a template each) and contacts, as at the start."""
        channels = {
            name: Channel.objects.create(name=name, medium="email", kind=kind)
            for name, kind in CHANNELS.items()
        }
        for name, (channel, policy) in MESSAGE_TYPES.items():
            message_type = MessageType.objects.create(
                channel=channels[channel], name=name, policy=policy
            )
            Template.objects.create(
                name=name, message_type=message_type, subject=name, html_body="<p>Hello</p>"
            )
        for name in CONTACTS:
            Contact.objects.create(email=f"{name}@example.com")

    def apply(self, event) -> str:
        """Apply one event through Waymark's services, or the ORM where staff
        edit a field no rule guards; returns what happened."""
        try:
            if isinstance(event, TypeChoice | Confirmation | ChannelChoice):
                return self.choose(event)
            if isinstance(event, PolicyChange):
                message_type = MessageType.objects.get(name=event.message_type)
                before, message_type.policy = message_type.policy, event.policy
                message_type_save(message_type=message_type)
                return UNCHANGED if before == event.policy else CHANGED
            if isinstance(event, KindChange):
                channel = Channel.objects.get(name=event.channel)
                before, channel.kind = channel.kind, event.kind
                channel_save(channel=channel)
                return UNCHANGED if before == event.kind else CHANGED
        except (ConsentError, ValidationError):
            return REFUSED
        contact = Contact.objects.get(email=f"{event.contact}@example.com")
        if isinstance(event, Blocklisting):
            Contact.objects.filter(pk=contact.pk).update(blocklisted=event.blocklisted)
        elif event.suppressed:
            Suppression.objects.get_or_create(address=contact.email, defaults={"reason": "manual"})
        else:
            Suppression.objects.filter(address=contact.email).delete()
        return UNCHANGED

    def choose(self, event) -> str:
        contact = Contact.objects.get(email=f"{event.contact}@example.com")
        if isinstance(event, ChannelChoice):
            scope = {"channel": Channel.objects.get(name=event.channel)}
        else:
            scope = {"message_type": MessageType.objects.get(name=event.message_type)}
        if isinstance(event, Confirmation):
            choice = {"status": SUBSCRIBED, "source": "confirmation_link", "confirmed": True}
        else:
            choice = {"status": event.status, "source": event.source}
        change = subscription_set(contact=contact, **choice, **scope)
        return CHANGED if change.changed else UNCHANGED

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        print_blob=True,
    )
    @given(history=histories)
    def test_sends_follow_consent_whatever_happened_before(self, history):
        # Given a clean database and a fresh world
        assert rows_left() == {}
        self.smtp.messages.clear()
        self.build_world()
        oracle = Oracle()

        # When the history happens, step by step
        for step, event in enumerate(history):
            records = ConsentRecord.objects.count()
            expected = oracle.apply(event)
            happened = self.apply(event)

            # Then each step is accepted or refused as the rules say, and the
            # ledger grows by one for each subscription change, by none otherwise
            assert happened == expected, f"step {step}: {event}"
            subscription_change = isinstance(event, TypeChoice | Confirmation | ChannelChoice)
            written = ConsentRecord.objects.count() - records
            assert written == (1 if subscription_change and happened == CHANGED else 0), (
                f"step {step}: {event} wrote {written} consent records"
            )
            # ...and what is stored is what the oracle holds (so a refusal changed nothing)
            assert stored_choices() == oracle.choices(), f"step {step}: {event}"
        assert {c.name: c.kind for c in Channel.objects.all()} == oracle.kind
        assert {t.name: t.policy for t in MessageType.objects.all()} == oracle.policy

        # When every message type is then sent to every contact
        outcomes, expected = {}, {}
        templates = Template.objects.select_related("message_type__channel")
        for contact in Contact.objects.all():
            for template in templates:
                message = message_send(
                    contact=contact,
                    template=template,
                    idempotency_key=f"{contact.pk}:{template.pk}",
                    origin="api",
                ).message
                name = contact.email.split("@")[0]
                outcomes[name, template.name] = (
                    SENT if message.status == Message.Status.SENT else message.skip_reason
                )
                expected[name, template.name] = oracle.outcome(name, template.name)

        # Then nothing consent forbids was sent, nothing it allows was skipped,
        # every skip has the oracle's reason, and the mail server agrees
        assert outcomes == expected
        arrived = sorted(
            (recipient, mail["Subject"])
            for mail in self.smtp.messages
            for recipient in mail.envelope_recipients
        )
        assert arrived == sorted(
            (f"{name}@example.com", type_name)
            for (name, type_name), outcome in expected.items()
            if outcome == SENT
        )
