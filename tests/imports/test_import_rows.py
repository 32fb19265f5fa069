"""The import writes the rows the dry run judged (imports.staging), set-based."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact, ListMembership
from imports.models import Import
from imports.parsing import Row
from imports.services import import_run
from imports.services.writing import lines_write
from imports.staging import row_from_line, row_line
from subscriptions.models import ConsentRecord, MessageType, Subscription
from tests.factories import ContactFactory, MessageTypeFactory
from tests.imports.conftest import EMAIL, attribute, checked, imported

pytestmark = pytest.mark.django_db

Status = Import.Status


def test_a_row_survives_the_trip_through_the_rows_file():
    row = Row(
        line=7,
        email="ada@example.com",
        user_id="tab\there\\and\nnewline",
        phone="+14155550123",
        attributes={"note": "a\tb\\c\nd", "seats": 2.5, "active": True},
        consent=[(("message_type", 3), True), (("channel", 4), False)],
    )

    assert row_from_line(row_line(row)) == row
    assert row_line(row).count(b"\n") == 1


def test_the_import_writes_the_checked_rows_without_reading_the_upload_again(
    run_worker, newsletter
):
    # Given a checked file
    an_import = checked(
        run_worker,
        newsletter,
        "email,plan\nada@example.com,pro\nbob@example.com,team\n",
        {"email": EMAIL, "plan": attribute("plan")},
    )
    assert an_import.rows_file
    # whose upload is then replaced by something else entirely
    with an_import.file.open("wb") as upload:
        upload.write(b"email,plan\nmallory@example.com,free\n")

    an_import = imported(run_worker, an_import)

    # Then what the dry run judged is imported, and the rows it kept are gone
    assert an_import.status == Status.DONE
    assert dict(Contact.objects.values_list("email", "attributes__plan")) == {
        "ada@example.com": "pro",
        "bob@example.com": "team",
    }
    assert not an_import.rows_file
    assert (an_import.rows_done, an_import.created, an_import.joined) == (2, 2, 2)


def test_a_conflict_that_arises_after_the_check_is_skipped_with_its_reason(run_worker, newsletter):
    an_import = checked(
        run_worker,
        newsletter,
        "email,userId\nada@example.com,u-ada\nbob@example.com,u-bob\n",
        {"email": EMAIL, "userId": {"to": "user_id"}},
    )
    # Between the check and the import, u-bob is given to someone else.
    ContactFactory(email="robert@example.com", user_id="u-bob")

    an_import = imported(run_worker, an_import)

    assert an_import.status == Status.DONE
    assert (an_import.created, an_import.skipped) == (1, 1)
    assert an_import.errors == [
        {
            "line": 3,
            "reason": "the userId u-bob belongs to a contact with another email address.",
        }
    ]
    assert list(
        ListMembership.objects.filter(contact_list=newsletter).values_list(
            "contact__email", flat=True
        )
    ) == ["ada@example.com"]


def test_the_skipped_rows_and_errors_of_the_check_carry_into_the_import(run_worker, newsletter):
    an_import = checked(
        run_worker,
        newsletter,
        "email\nada@example.com\nnot-an-email\nbob@example.com\n",
        {"email": EMAIL},
    )

    an_import = imported(run_worker, an_import, skip_bad_rows=True)

    assert (an_import.rows_done, an_import.created, an_import.skipped) == (3, 2, 1)
    assert an_import.errors == [{"line": 3, "reason": "“not-an-email” is not an email address."}]


def test_one_contact_named_by_two_rows_takes_both_in_line_order(newsletter):
    ContactFactory(
        email="ada@example.com", user_id="u-ada", phone="+14155550100", attributes={"plan": "free"}
    )
    rows = [
        Row(line=2, email="ada@example.com", user_id=None, attributes={"plan": "pro", "a": 1}),
        Row(line=3, email=None, user_id="u-ada", attributes={"plan": "team"}),
    ]

    written = lines_write(
        lines=[row_line(row) for row in rows], contact_list_id=newsletter.pk, import_id=1
    )

    ada = Contact.objects.get()
    assert ada.attributes == {"plan": "team", "a": 1}
    assert ada.phone == "+14155550100"
    assert (written.created, written.updated, written.joined) == (0, 1, 1)


def _rows(start, count, *, digest):
    return [
        Row(
            line=start + n,
            email=f"person{start + n}@example.com",
            user_id=f"u{start + n}" if n % 2 else None,
            phone="+14155550123" if n % 3 else "",
            attributes={"plan": "pro", "seats": n},
            consent=[(("message_type", digest.pk), n % 2 == 0)],
        )
        for n in range(count)
    ]


def test_a_chunk_of_n_or_2n_rows_takes_the_same_queries(newsletter):
    # Given chunks naming new contacts and stored ones, with a consent column
    digest = MessageTypeFactory(name="Digest", policy=MessageType.Policy.OPT_IN)
    for n in (100, 101, 200, 201, 202, 203):
        ContactFactory(email=f"person{n}@example.com", attributes={"old": True})

    with CaptureQueriesContext(connection) as small:
        few = lines_write(
            lines=[row_line(row) for row in _rows(100, 10, digest=digest)],
            contact_list_id=newsletter.pk,
            import_id=1,
        )
    with CaptureQueriesContext(connection) as big:
        many = lines_write(
            lines=[row_line(row) for row in _rows(200, 20, digest=digest)],
            contact_list_id=newsletter.pk,
            import_id=1,
        )

    assert len(big.captured_queries) == len(small.captured_queries)
    assert (few.created, few.updated, many.created, many.updated) == (8, 2, 16, 4)
    assert ListMembership.objects.filter(contact_list=newsletter, source="import").count() == 30
    assert Contact.objects.get(email="person201@example.com").attributes == {
        "old": True,
        "plan": "pro",
        "seats": 1,
    }
    assert Subscription.objects.filter(message_type=digest, status="subscribed").count() == 15
    assert ConsentRecord.objects.filter(source="import", message_type=digest).count() == 30


def test_an_import_without_the_checked_rows_fails_with_a_clear_problem(run_worker, newsletter):
    an_import = checked(run_worker, newsletter, "email\nada@example.com\n", {"email": EMAIL})
    an_import.rows_file.delete(save=False)
    Import.objects.filter(pk=an_import.pk).update(status=Status.QUEUED, rows_file="")

    done = import_run(import_id=an_import.pk)

    assert done.status == Status.FAILED
    assert done.problem == "The rows of this file's check are gone: check the file again."
    assert not Contact.objects.exists()
