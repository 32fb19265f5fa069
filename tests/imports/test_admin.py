"""The import pages in the admin: upload, mapping, the dry run's report, the
run button, progress, and the bad rows as CSV; each checks its permission."""

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts.models import Contact, ListMembership
from imports.models import Import
from tests.factories import UserFactory
from tests.imports.conftest import EMAIL, checked, imported

pytestmark = pytest.mark.django_db

ADD = reverse("admin:imports_import_add")
BAD_ROW_FILE = "email,plan\nada@example.com,pro\nnot-an-email,pro\nbob@example.com,team\n"


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(is_superuser=True))
    return client


def upload(client, contact_list, text, *, name="people.csv", encoding="utf-8"):
    return client.post(
        ADD,
        {"contact_list": contact_list.pk, "file": SimpleUploadedFile(name, text.encode(encoding))},
    )


def test_a_list_page_links_to_importing_into_it_and_exporting_it(admin_client, newsletter):
    response = admin_client.get(reverse("admin:contacts_contactlist_change", args=[newsletter.pk]))

    body = response.content.decode()
    assert f'href="{ADD}?contact_list={newsletter.pk}">Import CSV</a>' in body
    export = reverse("admin:contacts_contactlist_export", args=[newsletter.pk])
    assert f'href="{export}">Export CSV</a>' in body


def test_an_upload_leads_to_its_columns_with_a_guess_for_each(admin_client, newsletter):
    response = upload(admin_client, newsletter, "Email Address,Phone,plan\nada@example.com,,pro\n")

    an_import = Import.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:imports_import_mapping", args=[an_import.pk])
    page = admin_client.get(response["Location"]).content.decode()
    assert '<option value="email" selected>Email</option>' in page
    assert '<option value="phone" selected>Phone number</option>' in page
    assert '<option value="attribute:text" selected>Attribute (text)</option>' in page
    assert 'name="name_2" value="plan"' in page
    assert an_import.original_name == "people.csv"
    assert an_import.status == Import.Status.UPLOADED


def test_a_file_not_in_utf8_is_mapped_with_a_warning_and_windows_1252_chosen(
    admin_client, newsletter
):
    response = upload(
        admin_client, newsletter, "email,name\nzoe@example.com,Zoë\n", encoding="cp1252"
    )

    page = admin_client.get(response["Location"]).content.decode()
    assert "The start of this file is not UTF-8: choose its encoding below" in page
    assert '<option value="cp1252" selected>Windows-1252</option>' in page


def test_a_file_without_a_header_shows_why_it_cannot_be_imported(admin_client, newsletter):
    response = upload(admin_client, newsletter, "ada@example.com,Ada\n")

    page = admin_client.get(response["Location"]).content.decode()
    assert "Cannot be imported as it is" in page
    assert "The first line looks like data (“ada@example.com”), not a header." in page


def test_a_mapping_without_email_or_user_id_says_so_and_keeps_the_file(admin_client, newsletter):
    upload(admin_client, newsletter, "email,plan\nada@example.com,pro\n")
    an_import = Import.objects.get()

    response = admin_client.post(
        reverse("admin:imports_import_mapping", args=[an_import.pk]),
        {"col_0": "", "col_1": "attribute:text", "name_1": "plan", "encoding": "utf-8-sig"},
    )

    assert response.status_code == 200
    assert "Map a column to email or to userId: each row must name its contact." in (
        response.content.decode()
    )
    an_import.refresh_from_db()
    assert an_import.status == Import.Status.UPLOADED


def test_the_dry_run_report_names_the_bad_row_and_offers_the_good_rows(
    admin_client, newsletter, run_worker, django_capture_on_commit_callbacks
):
    upload(admin_client, newsletter, BAD_ROW_FILE)
    an_import = Import.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:imports_import_mapping", args=[an_import.pk]),
            {
                "col_0": "email",
                "col_1": "attribute:text",
                "name_1": "plan",
                "encoding": "utf-8-sig",
            },
        )
    assert response["Location"] == reverse("admin:imports_import_change", args=[an_import.pk])
    run_worker()

    page = admin_client.get(response["Location"]).content.decode()

    assert "<tr><th>Would create a contact</th><td>2</td></tr>" in page
    assert "<tr><th>Bad rows</th><td>1</td></tr>" in page
    assert "<tr><td>3</td><td>“not-an-email” is not an email address.</td></tr>" in page
    assert 'value="Import the good rows (2) and skip the bad ones"' in page
    assert not Contact.objects.exists()


def test_importing_the_good_rows_from_the_page_fills_the_list_and_shows_done(
    admin_client, newsletter, run_worker, django_capture_on_commit_callbacks
):
    an_import = checked(run_worker, newsletter, BAD_ROW_FILE, {"email": EMAIL})

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:imports_import_run", args=[an_import.pk]), {"skip_bad_rows": "yes"}
        )
    run_worker()

    page = admin_client.get(response["Location"]).content.decode()
    assert 'Status: <strong id="import-status">Done</strong>' in page
    assert '<td id="count-created">2</td>' in page
    assert '<td id="count-skipped">1</td>' in page
    assert set(
        ListMembership.objects.filter(contact_list=newsletter).values_list(
            "contact__email", flat=True
        )
    ) == {"ada@example.com", "bob@example.com"}


def test_running_without_choosing_the_good_rows_is_refused_with_the_reason(
    admin_client, newsletter, run_worker
):
    an_import = checked(run_worker, newsletter, BAD_ROW_FILE, {"email": EMAIL})

    response = admin_client.post(
        reverse("admin:imports_import_run", args=[an_import.pk]), follow=True
    )

    assert "The dry run found 1 bad row(s): nothing is imported while any row is bad." in (
        response.content.decode()
    )
    assert not Contact.objects.exists()


def test_the_status_view_reports_progress_as_json(admin_client, newsletter, run_worker):
    an_import = checked(run_worker, newsletter, "email\nada@example.com\n", {"email": EMAIL})
    Import.objects.filter(pk=an_import.pk).update(
        status=Import.Status.IMPORTING, bytes_done=an_import.size // 2, rows_done=1
    )

    status = admin_client.get(reverse("admin:imports_import_status", args=[an_import.pk])).json()

    assert status["status"] == "importing"
    assert status["percent"] == 50
    assert status["running"] is True
    assert status["rows_done"] == 1


def test_the_bad_rows_download_as_csv(admin_client, newsletter, run_worker):
    an_import = checked(run_worker, newsletter, BAD_ROW_FILE, {"email": EMAIL})

    response = admin_client.get(reverse("admin:imports_import_errors", args=[an_import.pk]))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert b"".join(response.streaming_content).decode() == (
        "line,reason\r\n3,“not-an-email” is not an email address.\r\n"
    )


def test_a_file_over_the_size_limit_is_refused_before_it_is_stored(
    admin_client, newsletter, settings, media_in_tmp
):
    settings.WAYMARK_IMPORT = {**settings.WAYMARK_IMPORT, "MAX_BYTES": 1000}
    big = "email\n" + "".join(f"person{n}@example.com\n" for n in range(5000))

    response = upload(admin_client, newsletter, big)

    assert response.status_code == 200
    assert "The file is too large: about " in response.content.decode()
    assert "imports take at most 1,000 bytes (WAYMARK_IMPORT_MAX_BYTES)" in (
        response.content.decode()
    )
    assert "This field is required" not in response.content.decode()
    assert not Import.objects.exists()
    assert not list(media_in_tmp.rglob("*.csv"))


def test_a_file_just_over_the_limit_is_refused_by_its_size(admin_client, newsletter, settings):
    settings.WAYMARK_IMPORT = {**settings.WAYMARK_IMPORT, "MAX_BYTES": 100}

    response = upload(admin_client, newsletter, "email\n" + "a@example.com\n" * 10)

    assert "The file is 146 bytes; imports take at most 100 bytes" in response.content.decode()
    assert not Import.objects.exists()


@pytest.mark.parametrize(
    "url_name, method",
    [
        ("imports_import_mapping", "get"),
        ("imports_import_run", "post"),
        ("imports_import_status", "get"),
        ("imports_import_errors", "get"),
        ("imports_import_change", "get"),
    ],
)
def test_staff_without_the_import_permissions_are_refused(
    client, newsletter, run_worker, url_name, method
):
    an_import = checked(run_worker, newsletter, BAD_ROW_FILE, {"email": EMAIL})
    client.force_login(UserFactory())

    response = getattr(client, method)(reverse(f"admin:{url_name}", args=[an_import.pk]))

    assert response.status_code == 403
    assert client.get(ADD).status_code == 403


def test_staff_who_may_view_imports_see_one_but_cannot_start_it(client, newsletter, run_worker):
    an_import = checked(run_worker, newsletter, "email\nada@example.com\n", {"email": EMAIL})
    viewer = UserFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_import"))
    client.force_login(viewer)

    page = client.get(reverse("admin:imports_import_change", args=[an_import.pk]))
    run = client.post(reverse("admin:imports_import_run", args=[an_import.pk]))

    assert page.status_code == 200
    assert 'value="Import 1 row"' not in page.content.decode()
    assert run.status_code == 403


def test_starting_an_import_takes_a_post(admin_client, newsletter, run_worker):
    an_import = checked(run_worker, newsletter, "email\nada@example.com\n", {"email": EMAIL})

    response = admin_client.get(reverse("admin:imports_import_run", args=[an_import.pk]))

    assert response.status_code == 405
    an_import.refresh_from_db()
    assert an_import.status == Import.Status.CHECKED


def test_deleting_an_import_deletes_its_file_and_keeps_the_contacts(
    admin_client, newsletter, run_worker, media_in_tmp
):
    an_import = imported(
        run_worker,
        checked(run_worker, newsletter, "email\nada@example.com\n", {"email": EMAIL}),
    )
    assert len(list(media_in_tmp.rglob("*.csv"))) == 1

    response = admin_client.post(
        reverse("admin:imports_import_delete", args=[an_import.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not Import.objects.exists()
    assert not list(media_in_tmp.rglob("*.csv"))
    assert Contact.objects.filter(email="ada@example.com").exists()
