from journeys.models.enrollment import Enrollment, StepRun
from journeys.models.journey import Journey
from journeys.models.steps import (
    ConditionStep,
    Connection,
    DelayStep,
    ExitStep,
    HoldoutStep,
    RandomSplitStep,
    SendMessageStep,
    SplitStep,
    StartJourneyStep,
    Step,
    UpdateContactStep,
    WaitForEventStep,
)

__all__ = [
    "ConditionStep",
    "Connection",
    "DelayStep",
    "Enrollment",
    "ExitStep",
    "HoldoutStep",
    "Journey",
    "RandomSplitStep",
    "SendMessageStep",
    "SplitStep",
    "StartJourneyStep",
    "Step",
    "StepRun",
    "UpdateContactStep",
    "WaitForEventStep",
]
