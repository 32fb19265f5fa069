"""What must hold before a journey goes live: its steps form a graph a
contact can walk through without looping on the spot."""

from journeys.models import Journey, SendMessageStep
from journeys.services.graph import JourneySteps
from messaging.previews import template_preview


def _targets(step, steps: JourneySteps) -> list[int]:
    """The steps a contact can go to from `step` (None, the journey's end, left out)."""
    targets = (steps.following(step, label) for label in step.connection_labels())
    return [target.pk for target in targets if target is not None]


def journey_problems(*, journey: Journey) -> list[str]:
    """Why `journey` cannot go live, in words for the marketer; empty if it can.

    - every step can be reached from the first;
    - no loop without a step that waits (a delay): a loop of sends and
      conditions alone would send to a contact as fast as the workers run;
    - every send step's template renders for a sample contact.
    """
    steps = JourneySteps.load(journey.pk)
    ordered, by_id = steps.ordered, steps.by_id
    if not ordered:
        return [f"“{journey}” has no steps yet."]
    targets = {step.pk: _targets(step, steps) for step in ordered}
    problems = []

    reached, stack = {ordered[0].pk}, [ordered[0].pk]
    while stack:
        for target in targets[stack.pop()]:
            if target not in reached:
                reached.add(target)
                stack.append(target)
    unreachable = [step for step in ordered if step.pk not in reached]
    if unreachable:
        names = ", ".join(f"“{step.key}”" for step in unreachable)
        problems.append(f"No contact can reach {names}: no step leads there.")

    # A loop is harmless if a contact waits somewhere on it: look for loops
    # among the steps that do not wait.
    moving = {pk for pk, step in by_id.items() if not step.waits and pk in reached}
    state = {}  # pk -> "open" while on the path, "done" after

    def visit(pk, path):
        state[pk] = "open"
        path.append(pk)
        for target in targets[pk]:
            if target not in moving:
                continue
            if state.get(target) == "open":
                return path[path.index(target) :]
            if target not in state and (loop := visit(target, path)):
                return loop
        path.pop()
        state[pk] = "done"
        return None

    for pk in (step.pk for step in ordered):  # in order: the same loop is named each time
        if pk in moving and pk not in state and (loop := visit(pk, [])):
            names = " → ".join(f"“{by_id[step].key}”" for step in [*loop, loop[0]])
            problems.append(
                f"The steps {names} form a loop with no delay in it: a contact would go "
                "round it without stopping. Put a delay on the loop, or end it."
            )
            break

    for step in ordered:
        if isinstance(step, SendMessageStep):
            preview = template_preview(template=step.template, may_choose_contact=False)
            if preview.render_error:
                problems.append(
                    f"Step “{step.key}”: its template “{step.template}” does not render for a "
                    f"sample contact: {preview.render_error}"
                )
    return problems
