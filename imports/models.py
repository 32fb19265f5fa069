import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from contacts.models import ContactList


def _upload_to(instance, filename):
    # The name staff gave the file is kept in `original_name`; on disk the
    # name is made here, so nothing in it can reach outside the folder.
    return f"imports/{timezone.now():%Y/%m}/{uuid.uuid4().hex}.csv"


class Import(models.Model):
    """One CSV file imported into a list: the file, how its columns map onto
    contacts, and what checking and importing it found and did.

    The file is checked first (a dry run that writes nothing), then imported
    by a background job in chunks; both read the file as a stream.
    """

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Waiting for its column mapping"
        CHECKING = "checking", "Checking (dry run)"
        CHECKED = "checked", "Checked: ready to import"
        REFUSED = "refused", "Cannot be imported as it is"
        QUEUED = "queued", "Waiting to import"
        IMPORTING = "importing", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Encoding(models.TextChoices):
        UTF8 = "utf-8-sig", "UTF-8"
        LATIN1 = "latin-1", "Latin-1 (ISO-8859-1)"
        CP1252 = "cp1252", "Windows-1252"

    class OnBadRows(models.TextChoices):
        STOP = "stop", "Import nothing while any row is bad"
        SKIP = "skip", "Import the good rows, skip the bad ones"

    contact_list = models.ForeignKey(ContactList, on_delete=models.CASCADE, related_name="imports")
    file = models.FileField(upload_to=_upload_to, max_length=255)
    original_name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    encoding = models.CharField(max_length=16, choices=Encoding.choices, blank=True)
    # Whether the first part of the file reads as UTF-8: when it does not,
    # staff must pick the file's encoding before it is checked.
    looks_utf8 = models.BooleanField(default=True)
    delimiter = models.CharField(max_length=1, default=",")
    header = models.JSONField(default=list)
    # {column name: {"to": "email" | "user_id" | "phone" | "attribute" |
    # "message_type" | "channel", "name": attribute name, "type": text |
    # number | boolean | date, "id": message type or channel id}}
    mapping = models.JSONField(default=dict, blank=True)
    on_bad_rows = models.CharField(max_length=8, choices=OnBadRows.choices, default=OnBadRows.STOP)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED)
    problem = models.TextField(blank=True, help_text="Why the file cannot be checked or imported.")
    # What the dry run found: rows, good, bad, duplicates, bad_emails,
    # bad_phones, bad_values, conflicts, to_create, to_update.
    report = models.JSONField(default=dict, blank=True)
    # The first bad rows: [{"line": n, "reason": "..."}], of the last dry run
    # or import (WAYMARK_IMPORT["ERRORS_KEPT"] at most).
    errors = models.JSONField(default=list, blank=True)
    # The good rows as the dry run judged them (imports.staging), read by the
    # import instead of the upload; deleted once the import is done.
    rows_file = models.FileField(max_length=255, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    # The import job's progress, written with each chunk: a job run again
    # skips the lines already written.
    lines_done = models.BigIntegerField(default=0)
    rows_done = models.BigIntegerField(default=0)
    created = models.BigIntegerField(default=0)
    updated = models.BigIntegerField(default=0)
    joined = models.BigIntegerField(default=0)
    skipped = models.BigIntegerField(default=0)
    consent_changes = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.original_name} into {self.contact_list}"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.size:
            return 0
        return min(100, int(self.bytes_done * 100 / self.size))

    @property
    def is_running(self) -> bool:
        return self.status in (self.Status.CHECKING, self.Status.QUEUED, self.Status.IMPORTING)
