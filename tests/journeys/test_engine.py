"""The engine's invariants: leases, idempotent sends, Redis as work in flight only."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from contacts.models import Contact
from journeys.models import Enrollment, Journey, StepRun
from journeys.services.entry import journeys_enroll_contact
from journeys.services.runner import JourneySteps, enrollment_advance, enrollments_advance
from journeys.services.scheduling import enrollments_claim_due, scheduler_tick
from journeys.tasks import journeys_advance_task
from messaging.models import Message
from tests.databases import PARALLEL_WRITERS
from tests.factories import ContactFactory, EnrollmentFactory

pytestmark = pytest.mark.django_db(transaction=True)


def enroll(journey, *contacts):
    return [journeys_enroll_contact(journey=journey, contact=c) for c in contacts]


def test_running_the_same_advance_job_twice_sends_one_email(
    welcome_series, nia, rq_queue, run_worker, smtp_server
):
    # Given Nia is due on the welcome series and claimed by a scheduler pass
    enroll(welcome_series, nia)
    claim = enrollments_claim_due()
    assert rq_queue.count == 1

    # When the same job is delivered twice (a retry after a lost acknowledgement)
    rq_queue.enqueue(
        journeys_advance_task, enrollment_ids=claim.enrollment_ids, token=str(claim.token)
    )
    run_worker()

    # Then one email went out and the enrollment moved on once
    assert len(smtp_server.messages) == 1
    assert Message.objects.count() == 1
    enrollment = Enrollment.objects.get()
    assert enrollment.state == Enrollment.State.WAITING
    assert enrollment.step_runs.count() == 2  # welcome, wait


def test_a_send_recorded_before_a_crash_is_not_repeated(welcome_series, nia, smtp_server):
    # Given the welcome email was sent, but the worker died before the
    # enrollment's move to the next step committed
    (enrollment,) = enroll(welcome_series, nia)
    steps = JourneySteps.load(welcome_series.pk)
    claim = enrollments_claim_due()
    enrollment.refresh_from_db()
    enrollment_advance(enrollment=enrollment, token=claim.token, steps=steps)
    assert len(smtp_server.messages) == 1
    Enrollment.objects.filter(pk=enrollment.pk).update(
        state=Enrollment.State.ACTIVE,
        current_step=welcome_series.step_map["welcome"],
        sequence=0,
        next_run_at=timezone.now(),
        locked_until=None,
        lease_token=None,
    )

    # When the enrollment is claimed and advanced again
    claim = enrollments_claim_due()
    enrollment.refresh_from_db()
    enrollment_advance(enrollment=enrollment, token=claim.token, steps=steps)

    # Then the Message row stops a second send, and the journey goes on
    assert len(smtp_server.messages) == 1
    assert Message.objects.get().status == Message.Status.SENT
    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.WAITING


def test_a_send_interrupted_mid_delivery_is_failed_not_resent(welcome_series, nia, smtp_server):
    # Given a worker died while handing the welcome email to the mail server
    (enrollment,) = enroll(welcome_series, nia)
    key = (
        f"journey:{welcome_series.pk}:enrollment:{enrollment.pk}"
        f":step:{welcome_series.step_map['welcome'].pk}:seq:0"
    )
    template = welcome_series.step_map["welcome"].template
    Message.objects.create(
        contact=nia,
        template=template,
        message_type=template.message_type,
        channel=template.message_type.channel,
        medium="email",
        origin="journey",
        idempotency_key=key,
        status=Message.Status.SENDING,
        attempts=1,
    )

    # When the enrollment is picked up again
    claim = enrollments_claim_due()
    enrollment.refresh_from_db()
    enrollment_advance(
        enrollment=enrollment, token=claim.token, steps=JourneySteps.load(welcome_series.pk)
    )

    # Then the unknown outcome is recorded instead of risking a second delivery
    message = Message.objects.get()
    assert message.status == Message.Status.FAILED
    assert "interrupted" in message.error
    assert smtp_server.messages == []
    enrollment.refresh_from_db()
    assert enrollment.state == Enrollment.State.WAITING


def test_two_scheduler_passes_never_claim_the_same_enrollment(welcome_series, rq_queue):
    # Given three contacts due on the journey
    enroll(welcome_series, *ContactFactory.create_batch(3))

    # When two schedulers claim, the second while the first holds its leases
    first = enrollments_claim_due(limit=2)
    second = enrollments_claim_due(limit=2)
    third = enrollments_claim_due(limit=2)

    # Then the work is split without overlap, and nothing is left over
    assert len(first.enrollment_ids) == 2
    assert len(second.enrollment_ids) == 1
    assert not set(first.enrollment_ids) & set(second.enrollment_ids)
    assert third is None
    assert rq_queue.count == 2


def test_work_lost_with_redis_is_rediscovered_from_the_database(
    welcome_series, nia, rq_queue, run_worker, smtp_server
):
    # Given Nia's enrollment was claimed and its job enqueued
    enroll(welcome_series, nia)
    assert scheduler_tick() == 1

    # When Redis loses everything before a worker runs the job
    rq_queue.connection.flushdb()
    assert run_worker() == 0
    assert smtp_server.messages == []

    # Then once the lease has run out the scheduler claims the enrollment again
    lease = settings.WAYMARK_ENGINE["LEASE"]
    with time_machine.travel(timezone.now() + lease + timedelta(seconds=1)):
        assert scheduler_tick() == 1
        run_worker()
    assert len(smtp_server.messages) == 1


def test_a_worker_killed_mid_batch_loses_no_enrollment(welcome_series, run_worker, smtp_server):
    # Given a batch of three claimed enrollments
    contacts = ContactFactory.create_batch(3)
    enroll(welcome_series, *contacts)
    claim = enrollments_claim_due()
    steps = JourneySteps.load(welcome_series.pk)

    # When the worker advances the first and dies before the others
    first = Enrollment.objects.select_related("contact").get(pk=claim.enrollment_ids[0])
    enrollment_advance(enrollment=first, token=claim.token, steps=steps)

    # Then after the lease expires the other two are claimed and advanced
    lease = settings.WAYMARK_ENGINE["LEASE"]
    with time_machine.travel(timezone.now() + lease + timedelta(seconds=1)):
        assert scheduler_tick() == 2
        run_worker()
    assert sorted(m.envelope_recipients[0] for m in smtp_server.messages) == sorted(
        c.email for c in contacts
    )
    assert set(Enrollment.objects.values_list("state", flat=True)) == {"waiting"}


def test_a_stale_job_whose_lease_was_taken_over_does_nothing(welcome_series, nia, smtp_server):
    # Given a claim whose lease expired and was taken by another scheduler
    enroll(welcome_series, nia)
    stale = enrollments_claim_due()
    with time_machine.travel(timezone.now() + settings.WAYMARK_ENGINE["LEASE"] * 2):
        fresh = enrollments_claim_due()
        # When the stale job finally runs
        counts = journeys_advance_task(enrollment_ids=stale.enrollment_ids, token=str(stale.token))
    # Then it finds nothing it may touch
    assert counts == {}
    assert smtp_server.messages == []
    assert Enrollment.objects.get().lease_token == fresh.token


def test_paused_journeys_are_not_advanced(welcome_series, nia, rq_queue):
    enroll(welcome_series, nia)
    Journey.objects.filter(pk=welcome_series.pk).update(state=Journey.State.PAUSED)

    assert scheduler_tick() == 0
    assert rq_queue.count == 0


def test_jobs_are_enqueued_only_after_the_claim_commits(welcome_series, nia, rq_queue):
    from django.db import transaction

    enroll(welcome_series, nia)
    with transaction.atomic():
        claim = enrollments_claim_due()
        assert claim is not None
        assert rq_queue.count == 0
    assert rq_queue.count == 1


def test_reentry_never_enrolls_a_contact_once(welcome_series, nia):
    first = journeys_enroll_contact(journey=welcome_series, contact=nia)
    Enrollment.objects.filter(pk=first.pk).update(state=Enrollment.State.COMPLETED)

    assert journeys_enroll_contact(journey=welcome_series, contact=nia) is None
    assert Enrollment.objects.count() == 1


def test_reentry_after_exit_allows_one_open_enrollment_at_a_time(welcome_series, nia):
    welcome_series.reentry = Journey.Reentry.AFTER_EXIT
    welcome_series.save()
    first = journeys_enroll_contact(journey=welcome_series, contact=nia)

    assert journeys_enroll_contact(journey=welcome_series, contact=nia) is None
    Enrollment.objects.filter(pk=first.pk).update(state=Enrollment.State.COMPLETED)
    assert journeys_enroll_contact(journey=welcome_series, contact=nia) is not None
    assert Enrollment.objects.count() == 2


def test_an_attribute_condition_branches_on_the_contacts_data(run_worker, rq_queue):
    from journeys.models import StepRun
    from tests.factories import ConditionStepFactory, ExitStepFactory, JourneyFactory

    # Given a journey that sends pro customers one way and others another
    journey = JourneyFactory()
    pro_exit = ExitStepFactory(journey=journey, key="pro", position=3)
    free_exit = ExitStepFactory(journey=journey, key="free", position=2)
    condition = ConditionStepFactory(
        journey=journey, key="is-pro", position=1, kind="attribute", attribute="plan",
        operator="eq", value="pro", connections={"yes": pro_exit, "no": free_exit},
    )  # fmt: skip
    pro = ContactFactory(attributes={"plan": "pro"})
    free = ContactFactory(attributes={"plan": "free"})
    enroll(journey, pro, free)

    # When the worker advances them
    scheduler_tick()
    run_worker()

    # Then each took its branch
    runs = {r.enrollment.contact_id: r for r in StepRun.objects.filter(step=condition)}
    assert (runs[pro.pk].branch, runs[free.pk].branch) == ("yes", "no")
    ended = StepRun.objects.filter(outcome="completed")
    assert ended.get(enrollment__contact=pro).step_id == pro_exit.pk
    assert ended.get(enrollment__contact=free).step_id == free_exit.pk


def test_claiming_a_batch_costs_the_same_whatever_its_size(welcome_series, rq_queue):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_to_claim(contacts):
        enroll(welcome_series, *ContactFactory.create_batch(contacts))
        with CaptureQueriesContext(connection) as captured:
            claim = enrollments_claim_due()
        assert len(claim.enrollment_ids) == contacts
        return len(captured)

    # woken ones first (none here), then due ones: select … for update skip
    # locked, and one update of the leases
    assert queries_to_claim(3) == queries_to_claim(6)


def test_advancing_a_batch_costs_a_fixed_number_of_queries_per_enrollment(welcome_series):
    # Given batches of 2, 4 and 8 contacts at the condition step (no project:
    # it says no, and they go on to the nudge email and the exit)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import EnrollmentFactory

    condition = welcome_series.step_map["condition"]

    def queries_to_advance(contacts):
        for contact in ContactFactory.create_batch(contacts):
            EnrollmentFactory(journey=welcome_series, contact=contact, current_step=condition)
        claim = enrollments_claim_due(enqueue=False)
        with CaptureQueriesContext(connection) as queries:
            counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)
        assert counts == {"completed": contacts}
        return len(queries)

    # When each batch is advanced (after one that fills the process's caches,
    # such as django's content types)
    queries_to_advance(1)
    q2, q4, q8 = (queries_to_advance(n) for n in (2, 4, 8))

    # Then the cost grows by the same amount for every enrollment: the batch's
    # own queries (enrollments, steps, the template, the step runs' insert,
    # the commits) do not grow with it. Per enrollment: the condition and its
    # transition; for the send, the locked re-read of the message with consent
    # and caps, the enrollment's check, the `sending` mark and its commit, the
    # result; the exit's transition.
    per_enrollment = (q4 - q2) // 2
    assert q8 - q4 == 4 * per_enrollment
    assert per_enrollment <= 14


@pytest.mark.postgresql(reason=PARALLEL_WRITERS)
def test_a_slow_batch_keeps_its_leases(welcome_series, settings):
    import threading
    from unittest import mock

    from django.db import connection

    from journeys.models import ConditionStep

    # Given three contacts at the condition, each taking 40 s of a 60 s lease
    settings.WAYMARK_ENGINE = {**settings.WAYMARK_ENGINE, "LEASE": timedelta(seconds=60)}
    condition = welcome_series.step_map["condition"]
    for contact in ContactFactory.create_batch(3):
        EnrollmentFactory(journey=welcome_series, contact=contact, current_step=condition)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        claim = enrollments_claim_due(enqueue=False)
        stolen = []

        def second_scheduler():
            try:
                stolen.append(enrollments_claim_due(enqueue=False))
            finally:
                connection.close()

        def slow_no(step, run):
            clock.shift(timedelta(seconds=40))
            # a second scheduler (its own process, its own connection) looks
            # for due work while this batch is running
            other = threading.Thread(target=second_scheduler)
            other.start()
            other.join()
            return False

        # When the worker advances the batch
        with mock.patch.object(ConditionStep, "matches", autospec=True, side_effect=slow_no):
            counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)

    # Then no other scheduler could take any of it, and every enrollment moved on
    assert stolen == [None, None, None]
    assert counts == {"completed": 3}


def test_a_steps_writes_roll_back_with_its_transition_when_the_lease_is_stolen(welcome_series):
    import uuid
    from unittest import mock

    from journeys.models import ConditionStep

    # Given two contacts at the condition, advanced in one batch
    condition = welcome_series.step_map["condition"]
    ada = ContactFactory(email="ada@example.com", attributes={"plan": "free"})
    bob = ContactFactory(email="bob@example.com", attributes={"plan": "free"})
    for contact in (ada, bob):
        EnrollmentFactory(journey=welcome_series, contact=contact, current_step=condition)
    claim = enrollments_claim_due(enqueue=False)

    def writing_step(step, run):
        # A step that writes (as an update-contact step will) ...
        Contact.objects.filter(pk=run.contact.pk).update(attributes={"seen": True})
        if run.contact.pk == ada.pk:
            # ... while another worker takes Ada's enrollment over.
            Enrollment.objects.filter(contact=ada).update(lease_token=uuid.uuid4())
        return True

    # When the worker advances the batch
    with mock.patch.object(ConditionStep, "matches", autospec=True, side_effect=writing_step):
        counts = enrollments_advance(enrollment_ids=claim.enrollment_ids, token=claim.token)

    # Then Ada's step left nothing behind, and Bob's write and transition both stand
    ada.refresh_from_db()
    bob.refresh_from_db()
    assert (ada.attributes, bob.attributes) == ({"plan": "free"}, {"seen": True})
    assert counts == {"lease_lost": 1, "completed": 1}
    assert not StepRun.objects.filter(enrollment__contact=ada).exists()
    assert Enrollment.objects.get(contact=ada).current_step_id == condition.pk


@pytest.mark.postgresql(reason="CREATE INDEX CONCURRENTLY")
def test_the_failed_enrollments_index_is_built_without_blocking_writes():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("sqlmigrate", "journeys", "0019", stdout=out)

    assert 'CREATE INDEX CONCURRENTLY "enrollment_failed"' in out.getvalue()
