"""A long journey with splits, built block by block, for the page-cost tests."""

from journeys.models import (
    ConditionStep,
    DelayStep,
    ExitStep,
    Journey,
    RandomSplitStep,
    SendMessageStep,
    SplitStep,
    UpdateContactStep,
    WaitForEventStep,
)
from journeys.services.graph import step_connect

BLOCK = 10


def journey_with_splits(*, name: str, blocks: int, templates) -> Journey:
    """A draft journey of ten steps a block (`blocks` blocks): in each block an email, a
    delay, a yes/no condition, an email for the yes, a random split, an email,
    a wait for an event, a multi-way split, a list join and an email (an exit
    to close the last block); the branches meet again at the block's end."""
    journey = Journey.objects.create(name=name)
    for block in range(blocks):
        base = block * BLOCK
        template = templates[block % len(templates)]

        def key(i, base=base):
            return f"b{base // BLOCK}-{i}"

        steps = [
            SendMessageStep(key=key(0), template=template),
            DelayStep(key=key(1), amount=2, unit=DelayStep.Unit.DAYS),
            ConditionStep(
                key=key(2), kind=ConditionStep.Kind.ATTRIBUTE, attribute="plan", value='"pro"'
            ),
            SendMessageStep(key=key(3), template=template),
            RandomSplitStep(key=key(4), weights="50,50"),
            SendMessageStep(key=key(5), template=template),
            WaitForEventStep(key=key(6), event_name="purchase"),
            SplitStep(key=key(7), branches=[{"attribute": "country", "op": "eq", "value": "FR"}]),
            UpdateContactStep(key=key(8), attribute="seen", value="true"),
            ExitStep(key=key(9))
            if block == blocks - 1
            else SendMessageStep(key=key(9), template=template),
        ]
        for i, step in enumerate(steps):
            step.journey = journey
            step.position = base + i + 1
            step.save()
        step_connect(step=steps[2], targets={"yes": steps[3], "no": steps[4]})
        step_connect(step=steps[4], targets={"a": steps[5], "b": steps[6]})
        step_connect(step=steps[7], targets={"1": steps[8], "other": steps[9]})
    return journey
