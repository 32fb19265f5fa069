import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase

from imports.models import Import
from imports.services import import_map, import_start, import_upload
from tests.factories import ContactListFactory


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    """Uploaded files go to a folder of the test's own."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def newsletter(db):
    return ContactListFactory(name="Newsletter")


def csv_file(text, *, name="contacts.csv", encoding="utf-8"):
    return SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")


def uploaded(contact_list, text, **kwargs):
    return import_upload(contact_list=contact_list, uploaded=csv_file(text, **kwargs))


def checked(
    run_worker, contact_list, text, mapping, *, encoding=Import.Encoding.UTF8, file_encoding="utf-8"
):
    """An import of `text` (saved in `file_encoding`), mapped to be read as
    `encoding` and dry-run by a real rq worker."""
    an_import = uploaded(contact_list, text, encoding=file_encoding)
    with TestCase.captureOnCommitCallbacks(execute=True):
        import_map(an_import=an_import, mapping=mapping, encoding=encoding)
    run_worker()
    an_import.refresh_from_db()
    return an_import


EMAIL = {"to": "email"}


def attribute(name, kind="text"):
    return {"to": "attribute", "name": name, "type": kind}


def imported(run_worker, an_import, *, skip_bad_rows=False):
    """Start a checked import and let a real rq worker run it."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        import_start(an_import=an_import, skip_bad_rows=skip_bad_rows)
    run_worker()
    an_import.refresh_from_db()
    return an_import
