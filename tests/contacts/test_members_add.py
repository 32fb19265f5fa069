"""contacts.services.lists.members_add: many contacts join a list in one statement."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import ListMembership
from contacts.services.lists import members_add
from contacts.signals import list_members_joined
from tests.factories import ContactFactory, ContactListFactory, ListMembershipFactory

pytestmark = pytest.mark.django_db


def test_new_members_join_and_existing_ones_stay_as_they_were():
    # Given a list with one member who joined from the admin
    readers = ContactListFactory()
    ada, bob, cy = ContactFactory.create_batch(3)
    ListMembershipFactory(contact_list=readers, contact=ada, source="admin")
    heard = []

    def listener(sender, contact_list_id, contact_ids, **kwargs):
        heard.append((contact_list_id, contact_ids))

    list_members_joined.connect(listener)
    try:
        # When the three are added by an import
        joined = members_add(
            contact_list_id=readers.pk, contact_ids=[ada.pk, bob.pk, cy.pk, bob.pk], source="import"
        )
    finally:
        list_members_joined.disconnect(listener)

    # Then the two new ones joined, were announced once, and Ada's row is unchanged
    assert joined == 2
    assert set(
        ListMembership.objects.filter(contact_list=readers).values_list("contact_id", "source")
    ) == {(ada.pk, "admin"), (bob.pk, "import"), (cy.pk, "import")}
    assert heard == [(readers.pk, sorted([bob.pk, cy.pk]))]


def test_adding_n_or_2n_members_takes_the_same_queries():
    readers = ContactListFactory()
    few, many = ContactFactory.create_batch(5), ContactFactory.create_batch(10)

    with CaptureQueriesContext(connection) as five:
        members_add(contact_list_id=readers.pk, contact_ids=[c.pk for c in few], source="import")
    with CaptureQueriesContext(connection) as ten:
        members_add(contact_list_id=readers.pk, contact_ids=[c.pk for c in many], source="import")

    assert len(ten.captured_queries) == len(five.captured_queries)
    assert ListMembership.objects.filter(contact_list=readers).count() == 15
