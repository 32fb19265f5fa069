"""An import's life: uploaded, mapped, checked by a dry run, imported by a
background job in chunks. Both jobs stream the file; neither holds it in
memory, and both may run twice harmlessly."""

import itertools
import tempfile

import django_rq
from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from imports.models import Import
from imports.parsing import BadRow, FileProblem, RowReader, mapping_problem, sniff
from imports.services.writing import Known, lines_write
from imports.staging import line_number, row_line
from subscriptions.services.batch import Catalogue

Status = Import.Status


class ImportError_(ValueError):
    """A step an import cannot take, with a message for staff."""


def _limits():
    return settings.WAYMARK_IMPORT


def import_upload(*, contact_list, uploaded, user=None) -> Import:
    """Store an uploaded CSV file (already on disk, as Django streams large
    uploads to a temporary file) and read its header; the rest of the file
    is read by the jobs. Raises ImportError_ for a file too large."""
    limit = _limits()["MAX_BYTES"]
    if uploaded.size > limit:
        raise ImportError_(
            f"The file is {uploaded.size:,} bytes; imports take at most {limit:,} bytes "
            "(WAYMARK_IMPORT_MAX_BYTES). Split it into smaller files."
        )
    uploaded.seek(0)
    sniffed = sniff(uploaded)
    uploaded.seek(0)
    return Import.objects.create(
        contact_list=contact_list,
        file=uploaded,
        original_name=(uploaded.name or "upload.csv")[:255],
        size=uploaded.size,
        encoding=Import.Encoding.UTF8 if sniffed.looks_utf8 else "",
        looks_utf8=sniffed.looks_utf8,
        delimiter=sniffed.delimiter,
        header=[name.strip() for name in sniffed.header],
        problem=sniffed.problem,
        status=Status.REFUSED if sniffed.problem else Status.UPLOADED,
        created_by=user,
    )


def import_map(*, an_import: Import, mapping: dict, encoding: str) -> Import:
    """Save how the columns map onto contacts and start the dry run."""
    if an_import.is_running or an_import.status == Status.DONE:
        raise ImportError_("This import is already under way; its mapping cannot change now.")
    problem = mapping_problem(mapping, an_import.header) or _catalogue_problem(mapping)
    if problem:
        raise ImportError_(problem)
    if encoding not in Import.Encoding.values:
        raise ImportError_("Choose the file's encoding.")
    updated = Import.objects.filter(
        pk=an_import.pk, status__in=[Status.UPLOADED, Status.CHECKED, Status.REFUSED]
    ).update(
        mapping=mapping,
        encoding=encoding,
        status=Status.CHECKING,
        problem="",
        report={},
        errors=[],
        bytes_done=0,
    )
    if not updated:
        raise ImportError_("This import is already under way; its mapping cannot change now.")
    transaction.on_commit(lambda: _enqueue("imports.tasks.imports_check_task", an_import.pk))
    an_import.refresh_from_db()
    return an_import


def _catalogue_problem(mapping):
    catalogue = Catalogue()
    for column, spec in mapping.items():
        if spec["to"] == "channel":
            channel = catalogue.channels.get(int(spec["id"]))
        elif spec["to"] == "message_type":
            channel = getattr(catalogue.message_types.get(int(spec["id"])), "channel", None)
        else:
            continue
        if channel is None:
            return f"The column “{column}” is mapped to a channel or message type that is gone."
        if channel.is_transactional:
            return (
                f"The column “{column}” is mapped to {channel}, a transactional channel: "
                "contacts cannot subscribe to or unsubscribe from it."
            )
    return ""


def _enqueue(task, import_id):
    django_rq.get_queue("default").enqueue(task, import_id, job_timeout=-1)


def _reader(an_import, binary):
    return RowReader(
        binary,
        encoding=an_import.encoding,
        delimiter=an_import.delimiter,
        mapping=an_import.mapping,
    )


def _chunks(reader, size):
    chunk = []
    for item in reader:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _keep(errors, bad_rows):
    room = _limits()["ERRORS_KEPT"] - len(errors)
    errors.extend({"line": b.line, "reason": b.reason} for b in bad_rows[: max(room, 0)])


def import_check(*, import_id: int) -> Import:
    """The dry run: read the whole file, judge every row and count what an
    import would do (contacts created, contacts changed) without writing any
    contact. Its report decides whether the import may start."""
    an_import = Import.objects.get(pk=import_id)
    if an_import.status != Status.CHECKING:
        return an_import
    report = dict.fromkeys(
        ["rows", "good", "bad", "bad_emails", "bad_phones", "bad_values", "duplicates",
         "conflicts", "bad_shapes", "to_create", "to_update"], 0,
    )  # fmt: skip
    kinds = {
        "bad_email": "bad_emails",
        "bad_phone": "bad_phones",
        "bad_value": "bad_values",
        "duplicate": "duplicates",
        "conflict": "conflicts",
        "bad_shape": "bad_shapes",
    }
    errors = []
    _forget_rows_file(an_import)
    # The good rows, as judged, for the import (imports.staging).
    with tempfile.TemporaryFile() as staged:
        try:
            with an_import.file.open("rb") as binary:
                reader = _reader(an_import, binary)
                for chunk in _chunks(reader, _limits()["CHUNK_ROWS"]):
                    rows = [item for item in chunk if not isinstance(item, BadRow)]
                    bad = [item for item in chunk if isinstance(item, BadRow)]
                    known = Known.lookup(rows)
                    good = []
                    for row in rows:
                        contact = known.resolve(row)
                        if isinstance(contact, BadRow):
                            bad.append(contact)
                            continue
                        if contact is None:
                            report["to_create"] += 1
                        else:
                            report["to_update"] += 1
                        good.append(row_line(row))
                    staged.writelines(good)
                    bad.sort(key=lambda b: b.line)
                    for item in bad:
                        report[kinds[item.kind]] += 1
                    report["rows"] += len(chunk)
                    report["bad"] += len(bad)
                    _keep(errors, bad)
                    Import.objects.filter(pk=import_id).update(bytes_done=reader.bytes_read)
        except FileProblem as exc:
            Import.objects.filter(pk=import_id).update(
                status=Status.REFUSED, problem=str(exc), report=report, errors=errors
            )
            return Import.objects.get(pk=import_id)
        report["good"] = report["rows"] - report["bad"]
        problem = ""
        if not report["rows"]:
            problem = "The file has a header but no rows."
        rows_file = ""
        if not problem and report["good"]:
            staged.seek(0)
            rows_file = an_import.file.storage.save(f"{an_import.file.name}.rows", File(staged))
    checked = Import.objects.filter(pk=import_id, status=Status.CHECKING).update(
        status=Status.REFUSED if problem else Status.CHECKED,
        problem=problem,
        report=report,
        errors=errors,
        bytes_done=an_import.size,
        rows_file=rows_file,
    )
    if not checked and rows_file:
        # Mapped again meanwhile: a new dry run is on its way with its own rows.
        an_import.file.storage.delete(rows_file)
    return Import.objects.get(pk=import_id)


def _forget_rows_file(an_import):
    """Delete the rows a previous dry run kept (mapped again, imported, deleted)."""
    if an_import.rows_file:
        an_import.rows_file.delete(save=False)
        Import.objects.filter(pk=an_import.pk).update(rows_file="")


def import_start(*, an_import: Import, skip_bad_rows: bool = False) -> Import:
    """Queue the import of a checked file. Refused while the dry run found bad
    rows, unless staff chose to import the good rows and skip the bad ones
    (`skip_bad_rows`): otherwise a bad row stops it before anything is written."""
    if an_import.status != Status.CHECKED:
        raise ImportError_("Only a checked file can be imported: check it first.")
    bad = an_import.report.get("bad", 0)
    if bad and not skip_bad_rows:
        raise ImportError_(
            f"The dry run found {bad:,} bad row(s): nothing is imported while any row is bad. "
            "Fix the file and upload it again, or choose to import the good rows."
        )
    if not an_import.report.get("good"):
        raise ImportError_("The file has no good row to import.")
    if not Import.objects.filter(pk=an_import.pk, status=Status.CHECKED).update(
        status=Status.QUEUED,
        bytes_done=0,
        # The dry run's bad rows are the import's skipped ones: the import
        # reads only the good rows it kept (imports.staging).
        skipped=bad,
        on_bad_rows=Import.OnBadRows.SKIP if skip_bad_rows else Import.OnBadRows.STOP,
    ):
        raise ImportError_("This import has already started.")
    transaction.on_commit(lambda: _enqueue("imports.tasks.imports_run_task", an_import.pk))
    an_import.refresh_from_db()
    return an_import


def import_run(*, import_id: int) -> Import:
    """Import the good rows the dry run kept in chunks (WAYMARK_IMPORT["CHUNK_ROWS"]),
    each chunk one transaction that also records how far the import got, so
    a job run again (a worker that died) goes on from there. No row is judged
    again: only which stored contacts the rows name is looked at afresh."""
    claimed = Import.objects.filter(
        pk=import_id, status__in=[Status.QUEUED, Status.IMPORTING]
    ).update(status=Status.IMPORTING, started_at=timezone.now())
    an_import = Import.objects.get(pk=import_id)
    if not claimed:
        return an_import
    if not an_import.rows_file:
        Import.objects.filter(pk=import_id).update(
            status=Status.FAILED,
            problem="The rows of this file's check are gone: check the file again.",
            finished_at=timezone.now(),
        )
        return Import.objects.get(pk=import_id)
    catalogue = Catalogue()
    errors = list(an_import.errors)
    size = an_import.rows_file.size or 1
    try:
        with an_import.rows_file.open("rb") as staged:
            # One iterator for the whole file: each new one would start again at its top.
            staged_lines = iter(staged)
            while lines := list(itertools.islice(staged_lines, _limits()["CHUNK_ROWS"])):
                last_line = line_number(lines[-1])
                if last_line <= an_import.lines_done:
                    continue  # written by an earlier run of this job
                if line_number(lines[0]) <= an_import.lines_done:
                    lines = [line for line in lines if line_number(line) > an_import.lines_done]
                with transaction.atomic():
                    written = lines_write(
                        lines=lines,
                        contact_list_id=an_import.contact_list_id,
                        import_id=import_id,
                        catalogue=catalogue,
                    )
                    bad = sorted(written.bad, key=lambda b: b.line)
                    if bad:
                        _keep(errors, bad)
                        errors.sort(key=lambda error: error["line"])
                    Import.objects.filter(pk=import_id).update(
                        lines_done=last_line,
                        rows_done=F("rows_done") + len(lines),
                        bytes_done=an_import.size * staged.tell() // size,
                        created=F("created") + written.created,
                        updated=F("updated") + written.updated,
                        joined=F("joined") + written.joined,
                        skipped=F("skipped") + len(bad),
                        consent_changes=F("consent_changes") + written.consent_changes,
                        errors=errors,
                    )
    except Exception as exc:
        # Chunks written so far stay written (each was whole); the page says
        # where it stopped rather than showing "importing" for ever.
        Import.objects.filter(pk=import_id).update(
            status=Status.FAILED,
            problem=f"The import stopped after line {Import.objects.get(pk=import_id).lines_done}"
            f": {exc.__class__.__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        raise
    Import.objects.filter(pk=import_id).update(
        status=Status.DONE,
        bytes_done=an_import.size,
        # Rows read: the good ones written, and the bad ones the dry run set aside.
        rows_done=F("rows_done") + an_import.report.get("bad", 0),
        finished_at=timezone.now(),
    )
    _forget_rows_file(an_import)
    return Import.objects.get(pk=import_id)


def import_error_rows(*, an_import: Import):
    """The bad rows kept, as CSV rows (a header first) for download."""
    yield ["line", "reason"]
    for error in an_import.errors:
        yield [error["line"], error["reason"]]


def import_delete(*, an_import: Import) -> None:
    """Delete an import and its uploaded file (the contacts it wrote stay).
    One still under way is refused: its job reads the file."""
    if an_import.is_running:
        raise ImportError_(f"{an_import} is under way: wait until it ends to delete it.")
    an_import.file.delete(save=False)
    if an_import.rows_file:
        an_import.rows_file.delete(save=False)
    an_import.delete()
