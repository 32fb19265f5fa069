"""What journeys adds to a contact's timeline (contacts.timeline): each
passage through a journey, with the path it took (every step run, its
outcome and the branch it chose)."""

from django.db.models import Prefetch

from contacts import timeline
from journeys.models import Enrollment, StepRun

# Step runs shown per passage: a journey that loops can run thousands; the
# enrollment's own admin page has all of them.
STEP_RUNS_SHOWN = 50
STEP_RUN_FIELDS = (
    "enrollment_id", "sequence", "outcome", "branch", "detail", "error", "started_at",
    "step__name", "step__key", "step__position", "step__polymorphic_ctype_id",
    "message__status", "message__skip_reason",
)  # fmt: skip


class PassageSource(timeline.Source):
    """Journey passages, by when the contact entered the journey."""

    name = "journey"
    permission = "journeys.view_enrollment"

    def entries(self, window):
        step_runs = (
            StepRun.objects.select_related("step", "message")
            .only(*STEP_RUN_FIELDS)
            .order_by("sequence", "pk")[: STEP_RUNS_SHOWN + 1]
        )
        passages = (
            Enrollment.objects.filter(contact=window.contact)
            .select_related("journey", "current_step")
            .prefetch_related(Prefetch("step_runs", queryset=step_runs, to_attr="path"))
        )
        for passage in self.newest(window, passages, "entered_at"):
            yield timeline.Entry(
                passage.entered_at,
                self.name,
                passage.pk,
                "admin/journeys/timeline/passage.html",
                {
                    "enrollment": passage,
                    "path": passage.path[:STEP_RUNS_SHOWN],
                    "more_steps": len(passage.path) > STEP_RUNS_SHOWN,
                },
            )


timeline.register(PassageSource())
