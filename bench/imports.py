"""A CSV import of BENCH_IMPORT_ROWS rows (default 1,000,000) into a list.

The file has an email, a phone number, three typed attributes and a
subscription column (an opt-in message type, "yes" on every other row); a
tenth of its emails belong to contacts that exist already (their rows change
them), the rest are new. The file is written before the clock starts. The
benchmark then runs what the two rq jobs run, in this process: the dry run
(every row read and judged, existing contacts looked up) and the import
(contacts upserted, members added, consent and its ledger written, in
chunks of WAYMARK_IMPORT_CHUNK_ROWS). The figures are rows per second of
each, counted in the database afterwards.
"""

import os
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.files import File

from contacts.models import Contact, ContactList, ListMembership
from imports.models import Import
from imports.services import import_check, import_run, import_upload
from subscriptions.models import Channel, ConsentRecord, MessageType

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", 1_000_000))
EXISTING = ROWS // 10


def _write_file(path: Path):
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,phone,firstName,seats,active,digest\n")
        for n in range(ROWS):
            out.write(
                f"person{n}@example.com,+1415555{n % 10000:04d},Name{n},{n % 50},"
                f"{'yes' if n % 3 else 'no'},{'yes' if n % 2 else ''}\n"
            )


def _existing_contacts():
    batch = 10_000
    for start in range(0, EXISTING, batch):
        Contact.objects.bulk_create(
            [
                Contact(email=f"person{n}@example.com", attributes={"plan": "free"})
                for n in range(start, min(start + batch, EXISTING))
            ]
        )


def run():
    folder = Path(tempfile.mkdtemp(prefix="waymark-bench-import-"))
    settings.MEDIA_ROOT = str(folder / "media")
    source = folder / "contacts.csv"
    _write_file(source)
    _existing_contacts()
    readers = ContactList.objects.create(name="Imported readers")
    channel = Channel.objects.create(name="Marketing email", medium=Channel.Medium.EMAIL)
    digest = MessageType.objects.create(
        channel=channel, name="Digest", policy=MessageType.Policy.OPT_IN
    )
    with source.open("rb") as handle:
        an_import = import_upload(contact_list=readers, uploaded=File(handle, name="contacts.csv"))
    mapping = {
        "email": {"to": "email"},
        "phone": {"to": "phone"},
        "firstName": {"to": "attribute", "name": "firstName", "type": "text"},
        "seats": {"to": "attribute", "name": "seats", "type": "number"},
        "active": {"to": "attribute", "name": "active", "type": "boolean"},
        "digest": {"to": "message_type", "id": digest.pk},
    }
    # What import_map and import_start do before enqueueing their jobs.
    Import.objects.filter(pk=an_import.pk).update(
        mapping=mapping, encoding=Import.Encoding.UTF8, status=Import.Status.CHECKING
    )
    size_mb = an_import.size / 1024 / 1024

    started = time.perf_counter()
    checked = import_check(import_id=an_import.pk)
    check_s = time.perf_counter() - started
    assert checked.status == Import.Status.CHECKED, checked.problem
    assert checked.report["good"] == ROWS, checked.report
    print(
        f"   dry run: {ROWS:,} rows ({size_mb:,.0f} MB) in {check_s:.1f}s: "
        f"{ROWS / check_s:,.0f} rows/s ({checked.report['to_create']:,} to create, "
        f"{checked.report['to_update']:,} to change)"
    )

    Import.objects.filter(pk=an_import.pk).update(status=Import.Status.QUEUED)
    started = time.perf_counter()
    done = import_run(import_id=an_import.pk)
    run_s = time.perf_counter() - started
    assert done.status == Import.Status.DONE, done.problem
    members = ListMembership.objects.filter(contact_list=readers).count()
    ledger = ConsentRecord.objects.filter(source="import").count()
    assert members == ROWS, members
    print(
        f"   import: {ROWS:,} rows in {run_s:.1f}s: {ROWS / run_s:,.0f} rows/s "
        f"({done.created:,} contacts created, {done.updated:,} changed, {members:,} members, "
        f"{ledger:,} consent records; chunks of {settings.WAYMARK_IMPORT['CHUNK_ROWS']:,})"
    )
    an_import.file.delete(save=False)
    source.unlink()
