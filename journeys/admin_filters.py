"""List filters of the journeys admin that other pages link to."""

from django.contrib import admin

from journeys.models import Enrollment, Journey


class EnrollmentAttentionFilter(admin.SimpleListFilter):
    """Failed enrollments that can be retried: their journey is not archived.
    The dashboard on the admin's index links here."""

    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("yes", "Failed, can be retried")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(state=Enrollment.State.FAILED).exclude(
                journey__state=Journey.State.ARCHIVED
            )
        return queryset
