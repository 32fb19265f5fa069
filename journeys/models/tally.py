from django.db import models
from django.db.models import Q

from journeys.models.journey import Journey


class JourneyTally(models.Model):
    """A journey's figures per UTC day and metric (and step, for per-step ones).

    Written by the database itself (triggers, journeys.tallies) as contacts
    enter, move and leave, whatever moved them (the engine, exit events,
    staff, archiving); see contacts.tallies for delta rows and folding.
    Metrics: `entered`, `completed`, `failed`, `exited:<kind>` (why they left:
    exit_event, audience, archived, admin, forgotten, holdout, other),
    `converted` and `holdout_converted` (goal reached, outside and inside the
    control group), `holdout` (drawn into the control group); per step:
    `reached` (the step ran for a contact), `branch:<label>` (the way a split,
    condition, holdout or wait went on) and `branch_converted:<label>` (goal
    reached after taking that way).
    """

    journey = models.ForeignKey(
        Journey, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    step_id = models.BigIntegerField(null=True, blank=True)
    day = models.DateField()
    metric = models.CharField(max_length=64)
    n = models.BigIntegerField()
    # False for a delta row written by a trigger, true for a folded row.
    folded = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "journey tallies"
        indexes = [
            models.Index(fields=["journey", "day"], name="journeytally_journey_day"),
            models.Index(fields=["id"], condition=Q(folded=False), name="journeytally_unfolded"),
        ]

    def __str__(self):
        return f"{self.metric} {self.day}: {self.n}"
