"""Putting contacts into a live journey from the admin: chosen contacts from
the contact list, a list's members, a segment's contacts; asked and confirmed,
as the journey's re-entry policy and audience allow, in the background when
there are many."""

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from journeys.models import Enrollment, Journey
from journeys.services import enrolling
from journeys.services.enrolling import journeys_enroll_segment
from tests.factories import (
    ContactFactory,
    ContactListFactory,
    EnrollmentFactory,
    JourneyFactory,
    ListMembershipFactory,
    SegmentFactory,
    SendMessageStepFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

CONTACTS = reverse("admin:contacts_contact_changelist")
LISTS = reverse("admin:contacts_contactlist_changelist")
SEGMENTS = reverse("admin:contacts_segment_changelist")


def signed_in(role):
    user = UserFactory(is_superuser=False, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    user.user_permissions.add(*_contact_perms())
    client = Client()
    client.force_login(user)
    return client


def _contact_perms():
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(
        content_type__app_label="contacts",
        codename__in=["view_contact", "view_contactlist", "view_segment"],
    )


def live_journey(name="Welcome", **fields):
    journey = JourneyFactory(name=name, state=Journey.State.LIVE, **fields)
    SendMessageStepFactory(journey=journey, key="hello", position=1)
    return journey


def text(response):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def enroll(client, url, action, ids, journey=None, confirmed=False, follow=False):
    data = {"action": action, "_selected_action": ids}
    if journey is not None:
        data["journey"] = journey.pk
    if confirmed:
        data["confirmed"] = "yes"
    return client.post(url, data, follow=follow)


def entered(journey):
    return set(Enrollment.objects.filter(journey=journey).values_list("contact__email", flat=True))


def test_chosen_contacts_enter_after_choosing_the_journey_and_confirming(staff_client):
    journey = live_journey(reentry=Journey.Reentry.AFTER_EXIT)
    JourneyFactory(name="Old draft", state=Journey.State.DRAFT)
    ann, bob = ContactFactory(email="ann@example.com"), ContactFactory(email="bob@example.com")
    ids = [ann.pk, bob.pk]

    choose = enroll(staff_client, CONTACTS, "enroll_contacts", ids)
    offered = [label for _, label in choose.context["form"].fields["journey"].choices]
    confirm = enroll(staff_client, CONTACTS, "enroll_contacts", ids, journey)
    assert entered(journey) == set()  # nothing before the confirming POST
    done = enroll(staff_client, CONTACTS, "enroll_contacts", ids, journey, True, follow=True)

    assert offered == ["Choose a live journey", "Welcome"]
    assert "2 contacts (2 chosen contact(s)) will be offered to the live journey Welcome" in text(
        confirm
    )
    assert "Its re-entry policy: After finishing: once the previous passage has ended" in text(
        confirm
    )
    assert 'name="csrfmiddlewaretoken"' in confirm.content.decode()
    assert entered(journey) == {"ann@example.com", "bob@example.com"}
    assert "2 contact(s) entered “Welcome”." in [str(m) for m in done.context["messages"]]
    assert Enrollment.objects.get(journey=journey, contact=ann).state == Enrollment.State.ACTIVE


def test_the_reentry_policy_keeps_out_who_has_been_on_the_journey(staff_client):
    journey = live_journey(reentry=Journey.Reentry.NEVER)
    ann, bob = ContactFactory(email="ann@example.com"), ContactFactory(email="bob@example.com")
    EnrollmentFactory(journey=journey, contact=ann, state=Enrollment.State.COMPLETED)

    done = enroll(
        staff_client, CONTACTS, "enroll_contacts", [ann.pk, bob.pk], journey, True, follow=True
    )

    assert Enrollment.objects.filter(journey=journey, contact=ann).count() == 1
    assert Enrollment.objects.filter(journey=journey, contact=bob).count() == 1
    shown = [str(m) for m in done.context["messages"]]
    assert "1 contact(s) entered “Welcome”; 1 kept out by its audience or re-entry policy." in (
        shown
    )


def test_a_journey_that_is_not_live_is_refused_and_nothing_enters(staff_client):
    paused = live_journey()
    Journey.objects.filter(pk=paused.pk).update(state=Journey.State.PAUSED)
    ann = ContactFactory()

    response = enroll(staff_client, CONTACTS, "enroll_contacts", [ann.pk], paused, True)

    assert response.status_code == 200  # the form again, with the reason
    assert "That journey is not live (any more): choose a live journey." in text(response)
    assert not Enrollment.objects.exists()


def test_too_many_chosen_contacts_are_sent_to_a_list_or_segment(staff_client, monkeypatch):
    monkeypatch.setattr(enrolling, "SELECTED_LIMIT", 2)
    monkeypatch.setattr("journeys.admin.entry.SELECTED_LIMIT", 2)
    journey = live_journey()
    ids = [ContactFactory().pk for _ in range(3)]

    response = enroll(staff_client, CONTACTS, "enroll_contacts", ids, journey, True, follow=True)

    assert not Enrollment.objects.exists()
    assert (
        "Choose at most 2 contacts at a time: to enroll more, put them in a list or a segment "
        "and enroll that from its page." in [str(m) for m in response.context["messages"]]
    )


def test_a_lists_members_enter(staff_client):
    journey = live_journey()
    trial = ContactListFactory(name="Trial users")
    for email in ("ann@example.com", "bob@example.com"):
        ListMembershipFactory(contact_list=trial, contact=ContactFactory(email=email))
    ContactFactory(email="outsider@example.com")

    confirm = enroll(staff_client, LISTS, "enroll_list", [trial.pk], journey)
    enroll(staff_client, LISTS, "enroll_list", [trial.pk], journey, True)

    assert "2 contacts (the members of the list “Trial users”)" in text(confirm)
    assert entered(journey) == {"ann@example.com", "bob@example.com"}


def test_a_segments_matching_contacts_enter_within_the_journeys_audience(staff_client):
    journey = live_journey(audience={"attribute": "country", "op": "eq", "value": "FR"})
    pro = SegmentFactory(name="Pro", conditions={"attribute": "plan", "op": "eq", "value": "pro"})
    ContactFactory(email="pro-fr@example.com", attributes={"plan": "pro", "country": "FR"})
    ContactFactory(email="pro-de@example.com", attributes={"plan": "pro", "country": "DE"})
    ContactFactory(email="free-fr@example.com", attributes={"plan": "free", "country": "FR"})

    confirm = enroll(staff_client, SEGMENTS, "enroll_segment", [pro.pk], journey)
    done = enroll(staff_client, SEGMENTS, "enroll_segment", [pro.pk], journey, True, follow=True)

    assert "2 contacts (the contacts of the segment “Pro”)" in text(confirm)
    assert "and those outside its audience" in text(confirm)
    assert entered(journey) == {"pro-fr@example.com"}
    assert "1 contact(s) entered “Welcome”; 1 kept out by its audience or re-entry policy." in [
        str(m) for m in done.context["messages"]
    ]
    assert Enrollment.objects.get(journey=journey).trigger_data == {"segmentId": pro.pk}


def test_a_segment_enters_chunk_by_chunk_and_twice_is_harmless():
    journey = live_journey()
    pro = SegmentFactory(conditions={"attribute": "plan", "op": "eq", "value": "pro"})
    pros = {ContactFactory(attributes={"plan": "pro"}).email for _ in range(5)}
    for _ in range(4):
        ContactFactory(attributes={"plan": "free"})

    first = journeys_enroll_segment(journey_id=journey.pk, segment_id=pro.pk, chunk_size=2)
    again = journeys_enroll_segment(journey_id=journey.pk, segment_id=pro.pk, chunk_size=2)

    assert (first, again) == (5, 0)
    assert entered(journey) == pros


@pytest.mark.django_db(transaction=True)
def test_a_big_list_enters_in_a_background_job(staff_client, monkeypatch, rq_queue, run_worker):
    monkeypatch.setattr(enrolling, "ENROLL_NOW_LIMIT", 2)
    journey = live_journey()
    big = ContactListFactory(name="Everyone")
    emails = set()
    for n in range(3):
        emails.add(f"c{n}@example.com")
        ListMembershipFactory(contact_list=big, contact=ContactFactory(email=f"c{n}@example.com"))

    done = enroll(staff_client, LISTS, "enroll_list", [big.pk], journey, True, follow=True)

    assert entered(journey) == set()  # not yet: a worker does it
    assert rq_queue.count == 1
    assert any("in the background" in str(m) for m in done.context["messages"])
    run_worker()
    assert rq_queue.count == 0
    assert entered(journey) == emails


@pytest.mark.django_db(transaction=True)
def test_a_big_segment_enters_in_a_background_job(staff_client, monkeypatch, rq_queue, run_worker):
    monkeypatch.setattr(enrolling, "ENROLL_NOW_LIMIT", 2)
    journey = live_journey()
    pro = SegmentFactory(name="Pro", conditions={"attribute": "plan", "op": "eq", "value": "pro"})
    emails = {ContactFactory(attributes={"plan": "pro"}).email for _ in range(3)}

    enroll(staff_client, SEGMENTS, "enroll_segment", [pro.pk], journey, True)

    assert entered(journey) == set()
    run_worker()
    assert rq_queue.count == 0
    assert entered(journey) == emails


@pytest.mark.parametrize(
    ("url", "action"),
    [(CONTACTS, "enroll_contacts"), (LISTS, "enroll_list"), (SEGMENTS, "enroll_segment")],
)
def test_a_drafter_is_not_offered_enrolling_and_a_forged_post_enrolls_no_one(url, action):
    drafter = signed_in("Journey drafters")
    journey = live_journey()
    contact = ContactFactory(attributes={"plan": "pro"})
    trial = ContactListFactory()
    ListMembershipFactory(contact_list=trial, contact=contact)
    segment = SegmentFactory(conditions={"attribute": "plan", "op": "eq", "value": "pro"})
    target = {CONTACTS: contact, LISTS: trial, SEGMENTS: segment}[url]

    page = drafter.get(url)
    action_form = page.context["action_form"]
    offered = [name for name, _ in action_form.fields["action"].choices] if action_form else []
    drafter.post(
        url,
        {
            "action": action,
            "_selected_action": [target.pk],
            "journey": journey.pk,
            "confirmed": "yes",
        },
    )

    assert page.status_code == 200
    assert action not in offered
    assert not Enrollment.objects.exists()


def test_a_manager_may_enroll():
    manager = signed_in("Journey managers")
    journey = live_journey()
    ann = ContactFactory(email="ann@example.com")

    offered = manager.get(CONTACTS).context["action_form"].fields["action"].choices
    enroll(manager, CONTACTS, "enroll_contacts", [ann.pk], journey, True)

    assert "enroll_contacts" in [name for name, _ in offered]
    assert entered(journey) == {"ann@example.com"}
