"""subscriptions.consent.consent_skip_reason over its whole table.

The expected table is written out here by hand from the rule as documented
(ARCHITECTURE.md, "Sending pipeline"; the function's docstring), not computed
by the code under test: each row is one policy, each column one stored
message-type status, and a channel unsubscribe overrides every cell.
"""

import itertools

import pytest

from subscriptions.consent import ConsentSkipReason, consent_skip_reason
from subscriptions.models import MessageType, Subscription

OPT_OUT, OPT_IN, DOUBLE = "opt_out", "opt_in", "double_opt_in"
SUB, UNSUB, PENDING = "subscribed", "unsubscribed", "pending"
NOT_OPTED_IN, NOT_CONFIRMED = "not_opted_in", "not_confirmed"
TYPE_UNSUBSCRIBED, CHANNEL_UNSUBSCRIBED = "message_type_unsubscribed", "channel_unsubscribed"

TYPE_STATUSES = (None, SUB, PENDING, UNSUB)
# A channel row only ever records an unsubscribe or a later resubscribe
# (subscription_set refuses `pending` for channels); `pending` is in the table
# anyway, since the function takes whatever is stored.
CHANNEL_STATUSES = (None, SUB, PENDING, UNSUB)

# When the contact is not unsubscribed from the channel: {policy: {type status: reason}}
EXPECTED = {
    OPT_OUT: {None: None, SUB: None, PENDING: None, UNSUB: TYPE_UNSUBSCRIBED},
    OPT_IN: {None: NOT_OPTED_IN, SUB: None, PENDING: NOT_OPTED_IN, UNSUB: TYPE_UNSUBSCRIBED},
    DOUBLE: {None: NOT_OPTED_IN, SUB: None, PENDING: NOT_CONFIRMED, UNSUB: TYPE_UNSUBSCRIBED},
}


def expected_reason(policy, channel_status, type_status):
    if channel_status == UNSUB:
        return CHANNEL_UNSUBSCRIBED
    return EXPECTED[policy][type_status]


def case_id(case):
    policy, channel_status, type_status = case
    return (
        f"{policy.replace('_', '-')}"
        f"-channel-{channel_status or 'no-choice'}"
        f"-type-{type_status or 'no-choice'}"
    )


CASES = list(itertools.product((OPT_OUT, OPT_IN, DOUBLE), CHANNEL_STATUSES, TYPE_STATUSES))


@pytest.mark.parametrize("case", CASES, ids=[case_id(case) for case in CASES])
def test_consent_skip_reason(case):
    policy, channel_status, type_status = case

    reason = consent_skip_reason(
        policy=policy, channel_status=channel_status, type_status=type_status
    )

    assert reason == expected_reason(policy, channel_status, type_status)


def test_the_table_covers_every_policy_status_and_reason():
    # The literals above are the model's values: a renamed value fails here,
    # not silently in the table.
    assert set(EXPECTED) == set(MessageType.Policy.values)
    assert set(TYPE_STATUSES) - {None} == set(Subscription.Status.values)
    reasons = {expected_reason(*case) for case in CASES} - {None}
    assert reasons == set(ConsentSkipReason.values)
