"""Trying a journey for one contact before it goes live.

The journey is walked from its first step for the chosen contact, as the
runner would, but nothing stays: every change a step makes (an attribute, a
list, a subscription, an entry into another journey) is rolled back at the
end, delays and waits are skipped, and a send step sends its template as a
test to the address given (or to no one). What comes back is the path taken,
step by step, with what each step did.
"""

import copy
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from journeys.models import Enrollment, Journey, SendMessageStep
from journeys.outcomes import (
    Complete,
    Continue,
    Exit,
    Holdout,
    RetryAt,
    WaitForEvent,
    WaitUntil,
)
from journeys.services.graph import JourneySteps
from journeys.services.runner import StepContext
from messaging.services import message_send_test

MAX_TEST_STEPS = 100


@dataclass(frozen=True)
class TriedStep:
    """One step of a test run: which step, the branch it took, and what it did."""

    key: str
    name: str
    kind: str
    branch: str
    detail: str


@dataclass(frozen=True)
class TrialRun:
    steps: list
    ended: str  # how the passage ended, in words
    sends: list  # (step key, SendResult or None when no address was given)


def journey_test_run(
    *,
    journey: Journey,
    contact,
    send_to: str = "",
    events_happen: bool = False,
    trigger_data: dict | None = None,
) -> TrialRun:
    """Walk `journey` for `contact` and say what would happen, changing nothing.

    Delays are skipped; a wait for an event takes its `event` branch when
    `events_happen`, else its `timeout` branch. Send steps send their
    template as a test to `send_to` (no consent check, counted in no metric),
    or to no one when it is empty. Works on drafts as on live journeys.
    """
    steps = JourneySteps.load(journey.pk)
    path, pending_sends = [], []
    ended = "the journey has no steps"
    with transaction.atomic():
        enrollment = Enrollment(
            journey=journey, trigger_data=dict(trigger_data or {}), entered_at=timezone.now()
        )
        contact = copy.copy(contact)
        step = steps.ordered[0] if steps.ordered else None
        while step is not None:
            if len(path) >= MAX_TEST_STEPS:
                ended = f"stopped after {MAX_TEST_STEPS} steps: the journey may loop"
                break
            now = timezone.now()
            enrollment.current_step, enrollment.next_run_at = step, now
            run = StepContext(enrollment=enrollment, contact=contact, steps=steps, now=now)
            if isinstance(step, SendMessageStep):
                event = run.template_context()["event"]
                pending_sends.append((step.key, step.template, copy.copy(contact), event))
                outcome = Continue(
                    run.following(step),
                    detail=f"sent “{step.template}” as a test to {send_to}"
                    if send_to
                    else f"would send “{step.template}” (no test address: nothing sent)",
                )
            elif step.performs_io:
                outcome = Continue(
                    run.following(step), detail="not run in a test: it calls the outside world"
                )
            else:
                outcome = _execute(step, run)
            branch, detail, step, ended = _what_follows(outcome, run, step, events_happen)
            path.append(
                TriedStep(
                    key=run.enrollment.current_step.key,
                    name=run.enrollment.current_step.name,
                    kind=run.enrollment.current_step._meta.verbose_name.removesuffix(" step"),
                    branch=branch,
                    detail=detail,
                )
            )
        transaction.set_rollback(True)
    sends = [
        (key, message_send_test(template=template, to_address=send_to, contact=who, event=event))
        if send_to
        else (key, None)
        for key, template, who, event in pending_sends
    ]
    return TrialRun(steps=path, ended=ended, sends=sends)


def _execute(step, run):
    try:
        with transaction.atomic():
            return step.execute(run)
    except Exception as exc:  # a step that fails in a test is what the test is for
        return Failed(detail=f"failed: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class Failed:
    detail: str


def _what_follows(outcome, run, step, events_happen):
    """(branch taken, what the step did, the next step or None, how it ended)."""
    branch, detail = getattr(outcome, "branch", ""), getattr(outcome, "detail", "")
    match outcome:
        case Continue(next_step=None):
            return branch, detail, None, "ran off the last step: completed"
        case Continue():
            return branch, detail, outcome.next_step, ""
        case WaitUntil():
            skipped = f"would wait until {outcome.at:%Y-%m-%d %H:%M %Z} (skipped in a test)"
            ended = "" if outcome.next_step else "ran off the last step: completed"
            return branch, skipped, outcome.next_step, ended
        case WaitForEvent():
            label = "event" if events_happen else "timeout"
            said = "comes" if events_happen else "does not come"
            following = run.following(step, label)
            detail = f"would wait for {outcome.event_name}; in this test it {said}"
            return label, detail, following, "" if following else "ran off the last step: completed"
        case Complete():
            return branch, detail, None, "completed at an exit step"
        case Holdout():
            return "holdout", detail, None, "held out: the contact would be in the control group"
        case Exit():
            return branch, detail, None, f"exited: {outcome.reason}"
        case RetryAt():
            return branch, detail, None, f"stopped: “{step.key}” would be tried again later"
        case Failed():
            return branch, detail, None, f"stopped: “{step.key}” failed"
    return branch, detail, None, f"stopped: “{step.key}” returned {outcome!r}"
