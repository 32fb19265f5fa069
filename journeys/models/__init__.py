from journeys.models.enrollment import Enrollment, StepRun, Wakeup
from journeys.models.journey import Journey
from journeys.models.steps import (
    ConditionStep,
    Connection,
    DelayStep,
    ExitStep,
    HoldoutStep,
    NotifyStaffStep,
    RandomSplitStep,
    SendMessageStep,
    SplitStep,
    StartJourneyStep,
    Step,
    UpdateContactStep,
    WaitForEventStep,
    WebhookStep,
)
from journeys.models.tally import JourneyTally
from journeys.models.trigger import JourneyTrigger, TriggerMembership

__all__ = [
    "ConditionStep",
    "Connection",
    "DelayStep",
    "Enrollment",
    "ExitStep",
    "HoldoutStep",
    "Journey",
    "JourneyTally",
    "JourneyTrigger",
    "NotifyStaffStep",
    "RandomSplitStep",
    "SendMessageStep",
    "SplitStep",
    "StartJourneyStep",
    "Step",
    "StepRun",
    "TriggerMembership",
    "UpdateContactStep",
    "WaitForEventStep",
    "Wakeup",
    "WebhookStep",
]
