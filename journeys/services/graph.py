"""A journey's graph: its steps in order and the labelled connections
between them, as the runner walks it and the checks before going live read it."""

from dataclasses import dataclass, field

from django.db import transaction

from journeys.models import Connection, Step
from journeys.models.steps import NEXT


@dataclass
class JourneySteps:
    """A journey's steps, loaded once per job, as their concrete types, and
    its connections: (step id, label) -> target step id."""

    by_id: dict = field(default_factory=dict)
    ordered: list = field(default_factory=list)
    connections: dict = field(default_factory=dict)

    def __post_init__(self):
        self._index_of = {step.pk: index for index, step in enumerate(self.ordered)}

    @classmethod
    def load(cls, journey_id):
        steps = list(Step.objects.filter(journey_id=journey_id).order_by("position", "id"))
        connections = {
            (step_id, label): target_id
            for step_id, label, target_id in Connection.objects.filter(
                step__journey_id=journey_id
            ).values_list("step_id", "label", "target_id")
        }
        return cls(by_id={s.pk: s for s in steps}, ordered=steps, connections=connections)

    def following(self, step, label=NEXT):
        """Where `label` leads from `step`: its connection, else the next step
        by position (None after the last: the journey ends)."""
        if target_id := self.connections.get((step.pk, label)):
            return self.by_id.get(target_id)
        index = self._index_of.get(step.pk)
        if index is None or index + 1 >= len(self.ordered):
            return None
        return self.ordered[index + 1]


class StepLinkError(ValueError):
    """A connection that cannot be made; the message says why, for the marketer."""


def step_connect(*, step: Step, targets: dict) -> None:
    """Point `step`'s connections at `targets`, {label: step or None}.

    None removes the label's connection: it then goes to the next step by
    position. Labels not named are left as they are. Raises StepLinkError,
    having changed nothing, for a label the step does not have, a step of
    another journey, or the step itself.
    """
    labels = step.connection_labels()
    for label, target in targets.items():
        if label not in labels:
            offered = ", ".join(f"“{name}”" for name in labels) or "none"
            raise StepLinkError(
                f"Step “{step.key}” has no “{label}” connection (it has: {offered})."
            )
        if target is None:
            continue
        if target.pk == step.pk:
            raise StepLinkError(f"Step “{step.key}” cannot lead to itself.")
        if target.journey_id != step.journey_id:
            raise StepLinkError(f"Step “{step.key}” can only lead to a step of the same journey.")
    with transaction.atomic():
        Connection.objects.filter(
            step=step, label__in=[label for label, target in targets.items() if target is None]
        ).delete()
        for label, target in targets.items():
            if target is not None:
                Connection.objects.update_or_create(
                    step=step, label=label, defaults={"target": target}
                )


def step_connections(*, step: Step) -> dict:
    """{label: target step} of `step`'s connections; a label that goes to the
    next step by position is absent."""
    return {c.label: c.target for c in step.connections.select_related("target")}
