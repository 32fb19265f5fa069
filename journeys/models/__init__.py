from journeys.models.enrollment import Enrollment, StepRun
from journeys.models.journey import Journey
from journeys.models.steps import (
    ConditionStep,
    DelayStep,
    ExitStep,
    SendMessageStep,
    StartJourneyStep,
    Step,
    UpdateContactStep,
)
from journeys.models.trigger import JourneyTrigger, TriggerMembership

__all__ = [
    "ConditionStep",
    "DelayStep",
    "Enrollment",
    "ExitStep",
    "Journey",
    "JourneyTrigger",
    "SendMessageStep",
    "StartJourneyStep",
    "Step",
    "StepRun",
    "TriggerMembership",
    "UpdateContactStep",
]
