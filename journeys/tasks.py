"""rq jobs: take ids, call one service."""

from journeys.services.enrolling import journeys_enroll_segment
from journeys.services.entry import journeys_enroll_list
from journeys.services.runner import enrollments_advance


def journeys_advance_task(*, enrollment_ids, token):
    return enrollments_advance(enrollment_ids=enrollment_ids, token=token)


def journeys_enroll_list_task(*, journey_id, list_id, trigger_data=None):
    return journeys_enroll_list(journey_id=journey_id, list_id=list_id, trigger_data=trigger_data)


def journeys_enroll_segment_task(*, journey_id, segment_id):
    return journeys_enroll_segment(journey_id=journey_id, segment_id=segment_id)
