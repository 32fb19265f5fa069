from journeys.models.enrollment import Enrollment, StepRun
from journeys.models.journey import Journey
from journeys.models.steps import (
    ConditionStep,
    Connection,
    DelayStep,
    ExitStep,
    SendMessageStep,
    StartJourneyStep,
    Step,
    UpdateContactStep,
)

__all__ = [
    "ConditionStep",
    "Connection",
    "DelayStep",
    "Enrollment",
    "ExitStep",
    "Journey",
    "SendMessageStep",
    "StartJourneyStep",
    "Step",
    "StepRun",
    "UpdateContactStep",
]
