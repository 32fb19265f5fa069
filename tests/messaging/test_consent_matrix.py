"""Every consent situation through the sending pipeline, to a real SMTP server.

Every combination of channel kind, message-type policy, the contact's channel
choice, their message-type choice, blocklisted or not, and suppressed address
or not: one case each, one contact each. What must happen comes from
`expected_outcome`, written here from the documented rules, never from the
code under test.

Some cases cannot be reached through the services: an opt-in or
double-opt-in type on a transactional channel (channel_save and
message_type_save refuse it), or an unsubscribe stored on a transactional
channel (subscription_set refuses it; such a row dates from when the channel
was marketing). All the data is set up with the ORM directly, so those cases
exist too and prove the pipeline still refuses to send what they forbid;
their ids end in "orm-only".

To keep it fast, the data is built once for the module in bulk and
committed (message_send runs outside transactions), every case's message is
sent by the module's fixture over one SMTP server, and each case's test reads
its outcome back; everything is removed at the end. Each case has its own
contact and idempotency key, so the cases do not interact.
"""

import itertools
from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from contacts.models import Contact
from messaging.models import Message, Suppression, Template
from messaging.services import message_send
from subscriptions.models import Channel, ConsentSource, MessageType, Subscription
from tests.conftest import SmtpRecorder, free_port, point_email_at

MARKETING, TRANSACTIONAL = "marketing", "transactional"
OPT_OUT, OPT_IN, DOUBLE_OPT_IN = "opt_out", "opt_in", "double_opt_in"
UNTOUCHED = None
SUBSCRIBED, PENDING, UNSUBSCRIBED = "subscribed", "pending", "unsubscribed"
RESUBSCRIBED = "resubscribed"  # a channel row with status subscribed, after an unsubscribe
SENT = "sent"


@dataclass(frozen=True)
class Case:
    kind: str
    policy: str
    channel_choice: str | None
    type_choice: str | None
    blocklisted: bool
    suppressed: bool

    @property
    def orm_only(self):
        """Data the services refuse to create (see the module docstring)."""
        return self.kind == TRANSACTIONAL and (
            self.policy != OPT_OUT or UNSUBSCRIBED in (self.channel_choice, self.type_choice)
        )

    @property
    def id(self):
        words = [
            self.kind,
            self.policy.replace("_", "-"),
            f"channel-{self.channel_choice or 'untouched'}",
            f"type-{self.type_choice or 'untouched'}",
            "blocklisted" if self.blocklisted else "not-blocklisted",
            "suppressed" if self.suppressed else "deliverable",
        ]
        if self.orm_only:
            words.append("orm-only")
        return "-".join(words)


CASES = [
    Case(*values)
    for values in itertools.product(
        (MARKETING, TRANSACTIONAL),
        (OPT_OUT, OPT_IN, DOUBLE_OPT_IN),
        (UNTOUCHED, UNSUBSCRIBED, RESUBSCRIBED),
        (UNTOUCHED, SUBSCRIBED, PENDING, UNSUBSCRIBED),
        (False, True),
        (False, True),
    )
]


def expected_outcome(case: Case) -> str:
    """The oracle: "sent", or the skip reason, from the rules as documented.

    Checks in the pipeline's documented order: blocklist, consent, suppressed
    address. Consent: an unsubscribe always counts, from the channel before
    the message type, whatever the channel's kind; an opt-in type needs a
    subscription, a double-opt-in type a confirmed one (a pending one is
    "not confirmed"); an opt-out type needs nothing more.
    """
    if case.blocklisted:
        return "blocklisted"
    if case.channel_choice == UNSUBSCRIBED:
        return "channel_unsubscribed"
    if case.type_choice == UNSUBSCRIBED:
        return "message_type_unsubscribed"
    if case.policy in (OPT_IN, DOUBLE_OPT_IN) and case.type_choice != SUBSCRIBED:
        if case.policy == DOUBLE_OPT_IN and case.type_choice == PENDING:
            return "not_confirmed"
        return "not_opted_in"
    if case.suppressed:
        return "suppressed"
    return SENT


def matrix_address(index):
    return f"matrix-{index}@example.com"


@dataclass
class Sent:
    """What the module's sends left besides the send log."""

    addresses: dict  # case -> its contact's email address
    arrived: Counter  # address -> how many emails reached it


@pytest.fixture(scope="module")
def matrix(django_db_setup, django_db_blocker):
    """Given every case's contact, choices and suppression (committed, in bulk),
    when each contact is sent a message of the case's type (once, through
    message_send, outside any transaction as it requires), then the send log
    and a real SMTP server hold the outcomes. Everything is removed afterwards."""
    # Never against a database that is not a test database: this commits and deletes.
    name = connection.settings_dict["NAME"]
    assert name.startswith("test_") or name.startswith("file:memorydb_"), name
    handler = SmtpRecorder()
    smtp = Controller(handler, hostname="127.0.0.1", port=free_port())
    email = SimpleNamespace()
    point_email_at(email, smtp.port)
    world = None
    smtp.start()
    try:
        with django_db_blocker.unblock(), override_settings(**vars(email)):
            world = _build(CASES)
            for case in CASES:
                message_send(
                    contact=world["contacts"][case],
                    template=world["templates"][case.kind, case.policy],
                    idempotency_key=case.id,
                    origin="api",
                )
        yield Sent(
            addresses={case: contact.email for case, contact in world["contacts"].items()},
            arrived=Counter(
                recipient for mail in handler.messages for recipient in mail.envelope_recipients
            ),
        )
    finally:
        smtp.stop()
        if world is not None:
            with django_db_blocker.unblock():
                _remove(world)


def _build(cases):
    channels = {
        kind: Channel.objects.create(name=f"Matrix {kind}", medium="email", kind=kind)
        for kind in (MARKETING, TRANSACTIONAL)
    }
    templates = {}
    for kind, policy in itertools.product(channels, (OPT_OUT, OPT_IN, DOUBLE_OPT_IN)):
        # The ORM, not message_type_save: opt-in types on a transactional channel are wanted.
        message_type = MessageType.objects.create(
            channel=channels[kind], name=f"Matrix {kind} {policy}", policy=policy
        )
        templates[kind, policy] = Template.objects.create(
            name=f"Matrix {kind} {policy}",
            message_type=message_type,
            subject=f"{kind} {policy}",
            html_body="<p>Hello {{ contact.first_name }}</p>",
        )
    contacts = Contact.objects.bulk_create(
        Contact(email=matrix_address(i), blocklisted=case.blocklisted)
        for i, case in enumerate(cases)
    )
    now = timezone.now()
    subscriptions = []
    for contact, case in zip(contacts, cases, strict=True):
        choice = {"source": ConsentSource.API, "updated_at": now, "contact": contact}
        if case.channel_choice:
            status = SUBSCRIBED if case.channel_choice == RESUBSCRIBED else UNSUBSCRIBED
            subscriptions.append(Subscription(channel=channels[case.kind], status=status, **choice))
        if case.type_choice:
            message_type = templates[case.kind, case.policy].message_type
            subscriptions.append(
                Subscription(message_type=message_type, status=case.type_choice, **choice)
            )
    Subscription.objects.bulk_create(subscriptions)
    Suppression.objects.bulk_create(
        Suppression(address=matrix_address(i), reason=Suppression.Reason.HARD_BOUNCE)
        for i, case in enumerate(cases)
        if case.suppressed
    )
    return {
        "channels": channels,
        "templates": templates,
        "contacts": dict(zip(cases, contacts, strict=True)),
    }


def _remove(world):
    contacts = [contact.pk for contact in world["contacts"].values()]
    Message.objects.filter(contact__in=contacts).delete()
    Suppression.objects.filter(address__startswith="matrix-").delete()
    Contact.objects.filter(pk__in=contacts).delete()
    Template.objects.filter(pk__in=[t.pk for t in world["templates"].values()]).delete()
    MessageType.objects.filter(channel__in=world["channels"].values()).delete()
    Channel.objects.filter(pk__in=[c.pk for c in world["channels"].values()]).delete()


def test_the_matrix_reaches_every_outcome():
    outcomes = {expected_outcome(case) for case in CASES}

    assert outcomes == {
        SENT,
        "blocklisted",
        "channel_unsubscribed",
        "message_type_unsubscribed",
        "not_opted_in",
        "not_confirmed",
        "suppressed",
    }


# The marker makes pytest-django create the test database for the module's
# fixture; the tests themselves only read what it committed.
@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_consent_matrix(matrix, case):
    # Given the case's contact and choices, sent a message of its type (see `matrix`)
    expected = expected_outcome(case)
    address = matrix.addresses[case]

    # When its outcome is read back from the send log
    message = Message.objects.get(idempotency_key=case.id)

    # Then it is the oracle's, and the mail server got the email only if it was sent
    if expected == SENT:
        assert (message.status, message.skip_reason) == ("sent", "")
        assert matrix.arrived[address] == 1
    else:
        assert (message.status, message.skip_reason) == ("skipped", expected)
        assert matrix.arrived[address] == 0


@pytest.mark.django_db
def test_nothing_else_arrived(matrix):
    expected = {matrix.addresses[case] for case in CASES if expected_outcome(case) == SENT}

    assert set(matrix.arrived) == expected
    assert sum(matrix.arrived.values()) == len(expected)
