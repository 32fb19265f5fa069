"""CSV imports into a list: the dry run's report, the import job's writes
(contacts, memberships, consent with its ledger, list-join journeys), run by
a real rq worker against PostgreSQL."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact, ListMembership
from imports.models import Import
from imports.parsing import Row
from imports.services import (
    ImportError_,
    chunk_write,
    import_map,
    import_run,
    import_start,
    import_upload,
)
from journeys.models import Enrollment, JourneyTrigger
from subscriptions.models import Channel, ConsentRecord, MessageType, Subscription
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    JourneyFactory,
    MessageTypeFactory,
    SendMessageStepFactory,
)
from tests.imports.conftest import EMAIL, attribute, checked, imported, uploaded

pytestmark = pytest.mark.django_db

Status = Import.Status


def test_the_dry_run_reports_every_kind_of_bad_row_and_writes_nothing(run_worker, newsletter):
    ContactFactory(email="known@example.com", attributes={"plan": "free"})
    text = (
        "email,phone,plan\n"
        "new@example.com,+14155550123,pro\n"  # line 2: would create
        "known@example.com,,pro\n"  # line 3: would change
        "not-an-email,,pro\n"  # line 4
        "bad-phone@example.com,12,pro\n"  # line 5
        "NEW@example.com,,pro\n"  # line 6: same email as line 2
        "short@example.com,\n"  # line 7: two fields
    )

    an_import = checked(
        run_worker,
        newsletter,
        text,
        {"email": EMAIL, "phone": {"to": "phone"}, "plan": attribute("plan")},
    )

    assert an_import.status == Status.CHECKED
    assert an_import.report == {
        "rows": 6,
        "good": 2,
        "bad": 4,
        "bad_emails": 1,
        "bad_phones": 1,
        "bad_values": 0,
        "duplicates": 1,
        "conflicts": 0,
        "bad_shapes": 1,
        "to_create": 1,
        "to_update": 1,
    }
    assert [(e["line"], e["reason"]) for e in an_import.errors] == [
        (4, "“not-an-email” is not an email address."),
        (5, "“12” is not a valid phone number. Write it with its country code, e.g. +14155550123."),
        (6, "has the same email address as line 2."),
        (7, "has 2 fields; the header has 3."),
    ]
    assert list(Contact.objects.values_list("email", "attributes")) == [
        ("known@example.com", {"plan": "free"})
    ]
    assert not ListMembership.objects.exists()


def test_an_import_creates_and_updates_contacts_with_typed_attributes_and_fills_the_list(
    run_worker, newsletter
):
    ContactFactory(email="ada@example.com", attributes={"firstName": "Ada", "plan": "free"})
    text = (
        "Email,userId,Phone,plan,seats,active,signedUp\n"
        "ada@example.com,,+44 20 7946 0958,pro,5,yes,2024-02-29\n"
        "bob@example.com,u-bob,,team,2.5,false,\n"
    )
    an_import = checked(
        run_worker,
        newsletter,
        text,
        {
            "Email": EMAIL,
            "userId": {"to": "user_id"},
            "Phone": {"to": "phone"},
            "plan": attribute("plan"),
            "seats": attribute("seats", "number"),
            "active": attribute("active", "boolean"),
            "signedUp": attribute("signedUp", "date"),
        },
    )

    an_import = imported(run_worker, an_import)

    assert an_import.status == Status.DONE
    assert (an_import.created, an_import.updated, an_import.joined) == (1, 1, 2)
    ada = Contact.objects.get(email="ada@example.com")
    bob = Contact.objects.get(email="bob@example.com")
    assert ada.attributes == {
        "firstName": "Ada",
        "plan": "pro",
        "seats": 5,
        "active": True,
        "signedUp": "2024-02-29",
    }
    assert ada.phone == "+442079460958"
    assert (bob.user_id, bob.phone) == ("u-bob", "")
    assert bob.attributes == {"plan": "team", "seats": 2.5, "active": False}
    assert set(
        ListMembership.objects.filter(contact_list=newsletter).values_list(
            "contact__email", "source"
        )
    ) == {("ada@example.com", "import"), ("bob@example.com", "import")}


def test_a_bad_row_stops_the_import_before_anything_is_written(run_worker, newsletter):
    an_import = checked(run_worker, newsletter, "email\ngood@example.com\nnope\n", {"email": EMAIL})

    with pytest.raises(ImportError_, match="found 1 bad row"):
        import_start(an_import=an_import)

    an_import.refresh_from_db()
    assert an_import.status == Status.CHECKED
    assert not Contact.objects.exists()


def test_choosing_to_import_the_good_rows_skips_ten_percent_of_bad_ones(run_worker, newsletter):
    lines = [
        "nobody-at-example.com" if n % 10 == 0 else f"person{n}@example.com" for n in range(100)
    ]
    an_import = checked(
        run_worker, newsletter, "email\n" + "\n".join(lines) + "\n", {"email": EMAIL}
    )
    assert (an_import.report["good"], an_import.report["bad"]) == (90, 10)
    assert [e["line"] for e in an_import.errors] == [2 + n for n in range(0, 100, 10)]

    an_import = imported(run_worker, an_import, skip_bad_rows=True)

    assert an_import.status == Status.DONE
    assert (an_import.created, an_import.skipped) == (90, 10)
    assert ListMembership.objects.filter(contact_list=newsletter).count() == 90
    assert not Contact.objects.filter(email__startswith="nobody").exists()


def test_consent_columns_subscribe_and_unsubscribe_with_ledger_entries_from_import(
    run_worker, newsletter
):
    email_channel = ChannelFactory(name="Marketing email")
    digest = MessageTypeFactory(
        channel=email_channel, name="Digest", policy=MessageType.Policy.OPT_IN
    )
    sms = ChannelFactory(name="Marketing SMS", medium=Channel.Medium.SMS)
    text = "email,digest,sms\nada@example.com,yes,no\nbob@example.com,,\n"

    an_import = checked(
        run_worker,
        newsletter,
        text,
        {
            "email": EMAIL,
            "digest": {"to": "message_type", "id": digest.pk},
            "sms": {"to": "channel", "id": sms.pk},
        },
    )
    an_import = imported(run_worker, an_import)

    ada = Contact.objects.get(email="ada@example.com")
    assert set(
        Subscription.objects.values_list("contact", "message_type", "channel", "status", "source")
    ) == {
        (ada.pk, digest.pk, None, "subscribed", "import"),
        (ada.pk, None, sms.pk, "unsubscribed", "import"),
    }
    assert set(
        ConsentRecord.objects.values_list("contact", "message_type", "channel", "action", "source")
    ) == {
        (ada.pk, digest.pk, None, "subscribed", "import"),
        (ada.pk, None, sms.pk, "unsubscribed", "import"),
    }
    assert an_import.consent_changes == 2


def test_contacts_the_import_adds_to_the_list_enter_its_list_join_journey(run_worker, newsletter):
    journey = JourneyFactory(
        trigger_type=JourneyTrigger.Kind.LIST_JOIN, trigger_event_name="", trigger_list=newsletter
    )
    SendMessageStepFactory(journey=journey, key="hello", position=1)
    an_import = checked(
        run_worker, newsletter, "email\nada@example.com\nbob@example.com\n", {"email": EMAIL}
    )

    imported(run_worker, an_import)

    assert sorted(
        Enrollment.objects.filter(journey=journey).values_list("contact__email", flat=True)
    ) == ["ada@example.com", "bob@example.com"]


def test_an_email_and_user_id_of_two_contacts_is_a_conflict_row(run_worker, newsletter):
    ContactFactory(email="ada@example.com", user_id="u-ada")
    ContactFactory(email="bob@example.com", user_id="u-bob")

    an_import = checked(
        run_worker,
        newsletter,
        "email,userId\nada@example.com,u-bob\n",
        {"email": EMAIL, "userId": {"to": "user_id"}},
    )

    assert an_import.report["conflicts"] == 1
    assert an_import.errors == [
        {
            "line": 2,
            "reason": "the email ada@example.com and the userId u-bob belong to two different "
            "contacts.",
        }
    ]


def _rows(start, count, *, digest):
    return [
        Row(
            line=start + n,
            email=f"person{start + n}@example.com",
            user_id=None,
            attributes={"plan": "pro"},
            consent=[(("message_type", digest.pk), True)],
        )
        for n in range(count)
    ]


def test_writing_a_chunk_takes_as_many_queries_for_ten_rows_as_for_five(newsletter):
    digest = MessageTypeFactory(name="Digest", policy=MessageType.Policy.OPT_IN)
    ContactFactory(email="person1@example.com")
    ContactFactory(email="person101@example.com")

    with CaptureQueriesContext(connection) as five:
        chunk_write(rows=_rows(1, 5, digest=digest), contact_list_id=newsletter.pk, import_id=1)
    with CaptureQueriesContext(connection) as ten:
        chunk_write(rows=_rows(101, 10, digest=digest), contact_list_id=newsletter.pk, import_id=1)

    assert len(ten.captured_queries) == len(five.captured_queries)
    assert ListMembership.objects.filter(contact_list=newsletter).count() == 15
    assert Subscription.objects.filter(message_type=digest, status="subscribed").count() == 15


def test_an_import_job_run_again_goes_on_after_the_lines_already_written(
    run_worker, newsletter, settings
):
    settings.WAYMARK_IMPORT = {**settings.WAYMARK_IMPORT, "CHUNK_ROWS": 2}
    text = "email\n" + "".join(f"p{n}@example.com\n" for n in range(6))
    an_import = checked(run_worker, newsletter, text, {"email": EMAIL})
    # A first run wrote the first chunk (lines 2 and 3) and its worker died.
    Import.objects.filter(pk=an_import.pk).update(status=Status.IMPORTING, lines_done=3)

    import_run(import_id=an_import.pk)
    import_run(import_id=an_import.pk)

    an_import.refresh_from_db()
    assert an_import.status == Status.DONE
    assert an_import.created == 4
    assert sorted(Contact.objects.values_list("email", flat=True)) == [
        f"p{n}@example.com" for n in range(2, 6)
    ]


# --- the file as a whole


def test_a_file_in_latin_1_is_detected_and_reads_right_once_chosen(run_worker, newsletter):
    text = "email,name\nzoe@example.com,Zoë\n"
    sniffed = uploaded(newsletter, text, encoding="latin-1")
    assert (sniffed.looks_utf8, sniffed.encoding) == (False, "")

    an_import = checked(
        run_worker,
        newsletter,
        text,
        {"email": EMAIL, "name": attribute("name")},
        encoding=Import.Encoding.LATIN1,
        file_encoding="latin-1",
    )
    imported(run_worker, an_import)

    assert Contact.objects.get(email="zoe@example.com").attributes == {"name": "Zoë"}


def test_a_latin_1_file_checked_as_utf8_is_refused_with_a_clear_message(run_worker, newsletter):
    an_import = checked(
        run_worker,
        newsletter,
        "email,name\nzoe@example.com,Zoë\n",
        {"email": EMAIL, "name": attribute("name")},
        file_encoding="latin-1",
    )

    assert an_import.status == Status.REFUSED
    assert an_import.problem.startswith(
        "The file is not UTF-8: line 2 cannot be read as UTF-8. Choose the file's encoding"
    )
    assert not Contact.objects.exists()


def test_a_file_that_stops_being_utf8_is_refused_with_the_line(run_worker, newsletter):
    good = "".join(f"p{n}@example.com,Ann\n" for n in range(5000))  # past the sniffed start
    body = ("email,name\n" + good).encode() + "zoe@example.com,Zoë\n".encode("cp1252")
    an_import = import_upload(
        contact_list=newsletter, uploaded=SimpleUploadedFile("mixed.csv", body)
    )
    assert an_import.looks_utf8 is True

    with TestCase.captureOnCommitCallbacks(execute=True):
        import_map(
            an_import=an_import,
            mapping={"email": EMAIL, "name": attribute("name")},
            encoding=Import.Encoding.UTF8,
        )
    run_worker()

    an_import.refresh_from_db()
    assert an_import.status == Status.REFUSED
    assert "The file is not UTF-8: line 5002 cannot be read as UTF-8" in an_import.problem
    assert not Contact.objects.exists()


def test_a_file_without_a_header_row_is_refused(newsletter):
    an_import = uploaded(newsletter, "ada@example.com,Ada\nbob@example.com,Bob\n")

    assert an_import.status == Status.REFUSED
    assert an_import.problem.startswith(
        "The first line looks like data (“ada@example.com”), not a header."
    )


def test_a_mapped_column_the_file_lacks_is_refused(newsletter):
    an_import = uploaded(newsletter, "email,plan\nada@example.com,pro\n")

    with pytest.raises(ImportError_, match="“tier” is mapped, but the file's header has no such"):
        import_map(
            an_import=an_import,
            mapping={"email": EMAIL, "tier": attribute("tier")},
            encoding=Import.Encoding.UTF8,
        )
    with pytest.raises(ImportError_, match="Map a column to email or to userId"):
        import_map(
            an_import=an_import, mapping={"plan": attribute("plan")}, encoding=Import.Encoding.UTF8
        )
    an_import.refresh_from_db()
    assert an_import.status == Status.UPLOADED
