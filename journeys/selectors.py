"""Read paths for the journey's page: what each step holds and has sent."""

from dataclasses import dataclass

from django.db.models import Count, Q

from journeys.models import Enrollment, StepRun


@dataclass(frozen=True)
class StepMetrics:
    waiting: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0

    def rate(self, count) -> str:
        return f"{count / self.sent:.0%}" if self.sent else "n/a"


def journey_step_metrics(*, journey, since, until) -> dict:
    """{step id: StepMetrics}: contacts on each step now, and for the
    messages each step sent between `since` and `until`, how many were sent,
    delivered, opened and clicked. Two grouped queries, whatever the size."""
    waiting = dict(
        Enrollment.objects.filter(journey=journey, state__in=Enrollment.OPEN_STATES)
        .exclude(current_step=None)
        .values_list("current_step_id")
        .annotate(n=Count("pk"))
    )
    runs = (
        StepRun.objects.filter(
            step__journey=journey,
            message__isnull=False,
            started_at__gte=since,
            started_at__lt=until,
        )
        .values("step_id")
        .annotate(
            **{
                name: Count(
                    "message", filter=Q(**{f"message__{field}__isnull": False}), distinct=True
                )
                for name, field in (
                    ("sent", "sent_at"),
                    ("delivered", "delivered_at"),
                    ("opened", "opened_at"),
                    ("clicked", "clicked_at"),
                )
            }
        )
    )
    sent = {row.pop("step_id"): row for row in runs}
    return {
        step_id: StepMetrics(waiting=waiting.get(step_id, 0), **sent.get(step_id, {}))
        for step_id in {*waiting, *sent}
    }
