"""The journeys app's admin, one module per family of pages."""

from journeys.admin import entry  # noqa: F401  (adds its actions to the contacts admin)
from journeys.admin.enrollments import EnrollmentAdmin, StepRunAdmin
from journeys.admin.journeys import JourneyAdmin
from journeys.admin.steps import StepInline

__all__ = ["EnrollmentAdmin", "JourneyAdmin", "StepInline", "StepRunAdmin"]
