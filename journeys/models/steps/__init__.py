"""Step types. Each implements execute() for its own behaviour only.

execute(run) reads the step's configuration, calls other apps' services and
returns an outcome (journeys.outcomes). It never locks, commits, retries or
enqueues: journeys.services.runner does that for every step type alike.
`run` is a journeys.services.runner.StepContext. The runner calls
execute_many(runs) with every contact at the step in a batch; by default it
calls execute() for each, and a step whose execute() costs queries overrides
it to do the same work set-based.
"""

from journeys.models.steps.actions import ExitStep, StartJourneyStep, UpdateContactStep
from journeys.models.steps.base import NEXT, Connection, Step, stable_share
from journeys.models.steps.branches import ConditionStep, HoldoutStep, RandomSplitStep, SplitStep
from journeys.models.steps.messages import NotifyStaffStep, SendMessageStep
from journeys.models.steps.waits import DelayStep, WaitForEventStep
from journeys.models.steps.webhooks import WebhookStep

__all__ = [
    "NEXT",
    "ConditionStep",
    "Connection",
    "DelayStep",
    "ExitStep",
    "HoldoutStep",
    "NotifyStaffStep",
    "RandomSplitStep",
    "SendMessageStep",
    "SplitStep",
    "StartJourneyStep",
    "Step",
    "UpdateContactStep",
    "WaitForEventStep",
    "WebhookStep",
    "stable_share",
]
