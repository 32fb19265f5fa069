from journeys.models.enrollment import Enrollment, StepRun
from journeys.models.journey import Journey
from journeys.models.steps import (
    ConditionStep,
    DelayStep,
    ExitStep,
    NotifyStaffStep,
    SendMessageStep,
    StartJourneyStep,
    Step,
    UpdateContactStep,
    WebhookStep,
)

__all__ = [
    "ConditionStep",
    "DelayStep",
    "Enrollment",
    "ExitStep",
    "Journey",
    "NotifyStaffStep",
    "SendMessageStep",
    "StartJourneyStep",
    "Step",
    "StepRun",
    "UpdateContactStep",
    "WebhookStep",
]
