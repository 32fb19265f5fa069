"""rq jobs: take ids, call one service."""

from journeys.services.runner import enrollments_advance


def journeys_advance_task(*, enrollment_ids, token):
    return enrollments_advance(enrollment_ids=enrollment_ids, token=token)
