"""A marketer imports a CSV file with a bad row into a list, in Chromium."""

import pytest
from playwright.sync_api import expect

from contacts.models import ListMembership
from tests.factories import ContactListFactory

pytestmark = pytest.mark.django_db(transaction=True)

CSV = (
    "email,firstName,plan\n"
    "ada@example.com,Ada,pro\n"
    "not-an-email,Bob,team\n"
    "cleo@example.com,Cleo,free\n"
)


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def test_a_csv_with_a_bad_row_is_checked_then_its_good_rows_imported(
    admin_page, live_server, rq_queue, run_worker
):
    readers = ContactListFactory(name="Readers")
    page = admin_page
    page.goto(f"{live_server.url}/admin/contacts/contactlist/{readers.pk}/change/")

    page.get_by_role("link", name="Import CSV").click()
    page.get_by_label("CSV file").set_input_files(
        {"name": "readers.csv", "mimeType": "text/csv", "buffer": CSV.encode()}
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name="Map the columns of readers.csv")).to_be_visible()
    expect(page.get_by_label("email", exact=True)).to_have_value("email")
    page.get_by_role("button", name="Check the file (dry run)").click()
    expect(page.locator("#import-status")).to_have_text("Checking (dry run)")

    run_worker()  # the dry run; the page follows it and shows its report

    expect(page.locator("#import-status")).to_have_text("Checked: ready to import")
    expect(page.locator("#bad-rows tbody td")).to_have_text(
        ["3", "“not-an-email” is not an email address."]
    )
    page.get_by_role("button", name="Import the good rows (2) and skip the bad ones").click()
    expect(page.locator("#import-status")).to_have_text("Waiting to import")

    run_worker()  # the import

    expect(page.locator("#import-status")).to_have_text("Done")
    expect(page.locator("#import-progress")).to_have_attribute("value", "100")
    expect(page.locator("#count-created")).to_have_text("2")
    expect(page.locator("#count-skipped")).to_have_text("1")
    page.goto(f"{live_server.url}/admin/contacts/contact/?lists__id__exact={readers.pk}")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    expect(page.locator("#result_list")).to_contain_text("ada@example.com")
    expect(page.locator("#result_list")).to_contain_text("cleo@example.com")
    assert set(
        ListMembership.objects.filter(contact_list=readers).values_list("contact__email", flat=True)
    ) == {"ada@example.com", "cleo@example.com"}
