"""Import workflows: create a job from an upload or a local file, run the ingest, recover jobs.

The ingest reads the ZIP once, streaming, and writes plays in batches through the one bulk-insert
path. Each batch commits together with the job's counts and its position in the export, so a
worker killed mid-import resumes from the last committed batch: the rerun skips the records
already counted and ends with exactly the plays and counts of a clean run. A failed import
removes the plays it added, so nothing half-written stays.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import queue
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Exists, Max, Min, OuterRef, Q
from django.db.models.functions import Trunc
from django.utils import timezone

from apps.accounts.models import User
from apps.history import totals
from apps.history.collection import user_lock
from apps.history.ingest import (
    API_PLAY_DETAILS,
    PLAY_STATE,
    PlayRecord,
    insert_plays,
    resolve_records,
    time_span,
    track_copies,
)
from apps.history.models import JobRun, Play, SyncCheckpoint
from apps.imports.models import ImportJob, MergedPlay
from apps.imports.parser import (
    SOURCE_OF,
    ExportContents,
    ExportError,
    Normaliser,
    SkipRecord,
    inspect_archive,
    iter_member,
    open_archive,
)
from apps.music.models import Source

logger = logging.getLogger(__name__)

EXPORT_SOURCES = (Source.EXPORT_EXTENDED, Source.EXPORT_ACCOUNT)
_T = TypeVar("_T")


class JobLost(Exception):
    """Another worker took the job over (this one was presumed dead); stop without writing."""


class UserBusy(Exception):
    """Another import of the same user is running; try again later."""


def max_upload_bytes() -> int:
    return settings.IMPORT_MAX_ZIP_SIZE_MB * 1024 * 1024


def too_big_message() -> str:
    return (
        f"The file is larger than the {settings.IMPORT_MAX_ZIP_SIZE_MB} MB limit "
        "(IMPORT_MAX_ZIP_SIZE_MB)."
    )


# --- Creating jobs ----------------------------------------------------------------------------


def create_upload_job(
    *, user: User, upload: UploadedFile, job: ImportJob | None = None
) -> ImportJob:
    """Store an uploaded ZIP and queue its ingest once the job is committed. `job` is an unsaved
    job to fill (the admin's add form), else a new one."""
    if upload.size is not None and upload.size > max_upload_bytes():
        raise ExportError(too_big_message())
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    name = Path(upload.name or "export.zip").name
    job = job if job is not None else ImportJob()
    job.user = user
    job.original_name = name
    job.size = upload.size or 0
    job.sha256 = digest.hexdigest()
    job.file.save(name, upload, save=False)
    job.save()
    queue_import(job)
    return job


def retry_job(*, job: ImportJob) -> bool:
    """Run a failed job again from the start (its plays were removed when it failed)."""
    reset = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.FAILED).update(
        status=ImportJob.Status.PENDING,
        error="",
        records_total=None,
        records_processed=0,
        records_seen=0,
        plays_added=0,
        duplicates=0,
        skipped={},
        earliest_play=None,
        latest_play=None,
        bytes_processed=0,
        play_id_floor=None,
        started_at=None,
        finished_at=None,
        attempts=0,
    )
    if reset:
        queue_import(job)
    return bool(reset)


def create_local_job(*, user: User, path: str | os.PathLike[str], queue: bool = True) -> ImportJob:
    """A job for a ZIP read where it lies (the command and the watched folder)."""
    path = os.path.abspath(path)
    size = os.path.getsize(path)
    job = ImportJob.objects.create(
        user=user, local_path=path, original_name=os.path.basename(path), size=size
    )
    if queue:
        queue_import(job)
    return job


def queue_import(job: ImportJob) -> None:
    from apps.imports.tasks import ingest_import

    job_id = job.pk
    transaction.on_commit(lambda: ingest_import.delay(job_id))


# --- Running jobs -----------------------------------------------------------------------------


# An import from its first claim to its end: running, or interrupted and waiting to resume.
IN_PROGRESS = Q(status=ImportJob.Status.RUNNING) | Q(
    status=ImportJob.Status.PENDING, started_at__isnull=False
)


def claim_job(*, job_id: int) -> ImportJob | None:
    """Take a pending job for this worker; None when it is gone or taken. One import per user
    runs at a time, from its first claim to its end, including while an interrupted one waits
    to resume: a failed import's clean-up removes the export plays added since its first claim,
    so no other import of the user may add any meanwhile. UserBusy says to come back."""
    with transaction.atomic():
        job = ImportJob.objects.filter(pk=job_id).select_related("user").first()
        if job is None:
            return None
        User.objects.select_for_update().filter(pk=job.user_id).first()
        busy = ImportJob.objects.filter(IN_PROGRESS, user_id=job.user_id)
        if busy.exclude(pk=job_id).exists():
            raise UserBusy(f"Another import of {job.user} is running or waiting to resume.")
        now = timezone.now()
        claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.PENDING).update(
            status=ImportJob.Status.RUNNING, heartbeat_at=now, error=""
        )
        if not claimed:
            return None
        job.refresh_from_db()
        job.attempts += 1
        fields = ["attempts"]
        if job.started_at is None:
            job.started_at = now
            job.play_id_floor = Play.objects.aggregate(top=Max("id"))["top"] or 0
            fields += ["started_at", "play_id_floor"]
        job.save(update_fields=fields)
    return job


_RUN_STATUS: dict[str, str] = {
    ImportJob.Status.SUCCEEDED: JobRun.Status.SUCCEEDED,
    ImportJob.Status.FAILED: JobRun.Status.FAILED,
}


def run_import(
    *,
    job_id: int,
    progress: Callable[[ImportJob], None] | None = None,
    task_id: str = "",
) -> ImportJob | None:
    """Claim and ingest one job, recorded as a JobRun; None when there was nothing to do."""
    job = claim_job(job_id=job_id)
    if job is None:
        return None
    run = JobRun.objects.create(user=job.user, type=JobRun.Type.IMPORT_ZIP, task_id=task_id)
    job = ingest_export(job=job, progress=progress)
    summary = job_summary(job)
    run.finish(
        status=_RUN_STATUS.get(job.status, JobRun.Status.SKIPPED),
        counts={
            "import_job": job.pk,
            **{k: summary[k] for k in ("records", "plays_added", "duplicates", "skipped")},
        },
        error=job.error,
    )
    return job


def ingest_export(
    *, job: ImportJob, progress: Callable[[ImportJob], None] | None = None
) -> ImportJob:
    """Ingest a claimed (running) job to the end: succeeded, or failed with a clear error."""
    try:
        try:
            size = os.path.getsize(job.path)
        except OSError as exc:
            raise ExportError(f"The export file could not be read: {exc.strerror}.") from None
        if size > max_upload_bytes():
            raise ExportError(too_big_message())
        with open_archive(job.path) as archive:
            contents = inspect_archive(archive)
            ImportJob.objects.filter(pk=job.pk).update(
                formats=contents.formats,
                ignored_files=contents.ignored,
                bytes_total=contents.total_bytes,
            )
            job.formats, job.ignored_files = contents.formats, contents.ignored
            job.bytes_total = contents.total_bytes
            _ingest(job, archive, contents, progress)
    except ExportError as exc:
        fail_import(job=job, reason=str(exc))
        return job
    except JobLost:
        logger.warning("Import %s was taken over by another worker; this run stops.", job.pk)
        job.refresh_from_db()
        return job
    except Exception as exc:
        logger.exception("Import %s failed unexpectedly", job.pk)
        fail_import(
            job=job,
            reason=f"The import stopped on an internal error ({type(exc).__name__}); "
            "nothing of it was kept. Try again, or tell the operator.",
        )
        return job
    finished = ImportJob.objects.filter(
        pk=job.pk, status=ImportJob.Status.RUNNING, attempts=job.attempts
    ).update(
        status=ImportJob.Status.SUCCEEDED,
        finished_at=timezone.now(),
        bytes_processed=job.bytes_total,
    )
    job.refresh_from_db()
    if finished:
        logger.info(
            "Import %s of %s succeeded: %d records, %d plays added, %d duplicates",
            job.pk,
            job.user,
            job.records_seen,
            job.plays_added,
            job.duplicates,
        )
        _discard_upload(job)
        MergedPlay.objects.filter(job=job).delete()
        if progress:
            progress(job)
    return job


def _keep_merged_from(job: ImportJob, merged_from: list[tuple[Any, ...]]) -> None:
    """Keep the plays a batch changed that are not the job's own, as they were, for
    fail_import to put back: those stored before the job began, and a poll's since (the job's
    own are of an export source, and removed whole). The first change of each is kept; a later
    batch's would start from the job's."""
    floor = job.play_id_floor or 0  # set when the job was claimed
    rows = []
    for pk, *state in merged_from:
        fields = dict(zip(PLAY_STATE, state, strict=True))
        if pk <= floor or fields["source"] == Source.API:
            rows.append(MergedPlay(job=job, play_id=pk, **fields))
    MergedPlay.objects.bulk_create(rows, ignore_conflicts=True)


def _discard_upload(job: ImportJob) -> None:
    """Delete an imported upload: its plays are stored, and it holds what imports drop (IP
    addresses, user agents, the export's username), unless IMPORT_KEEP_SENSITIVE keeps them. A
    failed job keeps its file, to be run again; a local file (the command, the watched folder)
    is the operator's."""
    if job.file and not settings.IMPORT_KEEP_SENSITIVE:
        job.file.delete(save=False)
        ImportJob.objects.filter(pk=job.pk).update(file="")


@dataclass
class _Batch:
    records: list[PlayRecord]
    skips: dict[str, int]
    position: int  # records read from the export up to the end of this batch
    bytes_now: int
    # Each record's track, when the reader resolved them (_Catalogue), and their copies, read
    # then; else the writer reads them.
    track_ids: list[int] | None = None
    copies: dict[int, tuple[Any, ...]] | None = None


# The first batch's most records (see read_batches).
FIRST_BATCH = 5_000


def read_batches(
    archive: zipfile.ZipFile, contents: ExportContents, resume_from: int
) -> Iterator[_Batch]:
    """The export's records in batches of one source, skipping the first `resume_from` (already
    committed by an earlier run). Raises ExportError for a whole-file fault.

    The first batch holds at most FIRST_BATCH records: the writer starts on it while the next is
    read, instead of waiting for a whole batch."""
    max_records = settings.IMPORT_MAX_RECORDS
    batch_size = min(settings.IMPORT_BATCH_SIZE, FIRST_BATCH)
    normaliser = Normaliser()
    batch: list[PlayRecord] = []
    skips: dict[str, int] = {}
    in_batch = 0
    position = 0
    bytes_done = 0
    for member in contents.members:
        normalise: Callable[[dict[str, Any]], PlayRecord] = normaliser.function_for(member.format)
        source = SOURCE_OF[member.format]
        if batch and batch[0].source != source:
            yield _Batch(batch, skips, position, bytes_done)
            batch, skips, in_batch = [], {}, 0
            batch_size = settings.IMPORT_BATCH_SIZE
        box: list[Any] = []
        items = bad_times = 0
        append = batch.append
        for raw in iter_member(archive, member, box):
            position += 1
            if position <= resume_from:
                if position > max_records:
                    raise ExportError(_too_many_records(max_records))
                continue
            items += 1
            in_batch += 1
            try:
                append(normalise(raw))
            except SkipRecord as skip:
                skips[skip.reason] = skips.get(skip.reason, 0) + 1
                bad_times += skip.reason == "invalid_timestamp"
            if in_batch >= batch_size:
                if position > max_records:
                    raise ExportError(_too_many_records(max_records))
                yield _Batch(batch, skips, position, bytes_done + box[0].bytes_read)
                batch, skips, in_batch = [], {}, 0
                append = batch.append
                batch_size = settings.IMPORT_BATCH_SIZE
        if position > max_records:
            raise ExportError(_too_many_records(max_records))
        if items and bad_times == items:
            raise ExportError(
                f"{member.name} does not look like a Spotify streaming history: none of "
                f"its {items:,} records has a valid "
                f"{'ts' if source == Source.EXPORT_EXTENDED else 'endTime'} time."
            )
        bytes_done += member.size
    if in_batch:
        yield _Batch(batch, skips, position, bytes_done)


def _too_many_records(limit: int) -> str:
    return f"The export holds more than {limit:,} records (IMPORT_MAX_RECORDS); it was refused."


_DONE = object()


def _read_ahead(batches: Iterator[_Batch]) -> Iterator[_Batch]:
    """Read the next batch in a thread while this one is written: parsing (Python) and the
    database (waiting on the server, the GIL released) overlap. One batch is held ahead: the
    next is read only once the writer has taken it, so two batches at most are in memory. A
    database connection the reader opened (_Catalogue) is closed when it ends."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=1)
    taken = threading.Semaphore(0)  # released each time the writer takes a batch
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                ahead.put(batch)  # the queue is empty: the last batch was taken
                while not taken.acquire(timeout=0.2):
                    if stop.is_set():
                        return
            ahead.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 (handed to the writer, which raises it)
            ahead.put(exc)
        finally:
            connection.close()  # this thread's own, if it opened one

    reader = threading.Thread(target=produce, name="import-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            taken.release()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():
            with contextlib.suppress(queue.Empty):
                ahead.get(timeout=0.2)
        reader.join()


def _ingest(
    job: ImportJob,
    archive: zipfile.ZipFile,
    contents: ExportContents,
    progress: Callable[[ImportJob], None] | None,
) -> None:
    catalogue = _Catalogue(
        job.pk, ahead=connection.vendor == "postgresql" and not connection.in_atomic_block
    )
    batches = read_batches(archive, contents, job.records_processed)
    if catalogue.ahead:
        batches = catalogue.resolve(batches)
    with _no_collections():
        for batch in _read_ahead(batches):
            _write_batch(job, batch, catalogue)
            if progress:
                progress(job)


class _Catalogue:
    """Where an import's batches get their tracks, and the tracks resolved so far.

    On PostgreSQL the reader thread resolves each batch on its own connection, commits the
    catalogue rows it creates and reads the tracks' copies the plays carry, while the writer
    stores the batch before: the catalogue's part of a first import, about a sixth of its time
    (`bench imports`), then overlaps the plays'. A
    local track the writer's batch refers to can meet its real one meanwhile, in the next
    batch's resolution or another user's import: the merge waits for the batch that has it,
    and moves its plays too, or merges it first, and the batch, failing its check, is written
    again with its tracks resolved anew, the reader held back until it commits. Elsewhere the
    writer resolves each batch itself: SQLite takes one writer at a time, and inside a
    transaction (a test's) another connection would not see the job's rows.
    """

    def __init__(self, job_id: int, *, ahead: bool) -> None:
        self.job_id = job_id
        self.ahead = ahead
        self.known: dict[str, int] = {}  # uri -> track id, resolved by an earlier batch
        # One resolution at a time: the reader's, or a retried batch's until it commits. Each
        # takes it before its transaction begins, so neither waits for it holding rows.
        self.lock = threading.Lock()

    def resolve(self, batches: Iterator[_Batch]) -> Iterator[_Batch]:
        """The batches, each with its track ids (in the reader thread)."""
        for batch in batches:
            if batch.records:
                batch.track_ids = self.track_ids(batch.records)
                batch.copies = track_copies(batch.track_ids)
            yield batch

    def track_ids(self, records: list[PlayRecord]) -> list[int]:
        return self.twice(lambda _: resolve_records(records, self.known))

    def twice(self, write: Callable[[int], _T], *, lock_first: bool = True) -> _T:
        """Run `write(attempt)` in a transaction, and once more if it fails on what another
        transaction changed (see the class and _changed_under). The second attempt holds the
        lock, and so does the first with `lock_first` (the reader's: a retried batch waits for
        it)."""
        for attempt in (1, 2):
            lock = self.lock if lock_first or attempt == 2 else contextlib.nullcontext()
            try:
                with lock, transaction.atomic():
                    if attempt == 2:
                        self.known.clear()  # it may hold tracks of the rolled-back attempt
                    return write(attempt)
            except (IntegrityError, OperationalError) as exc:
                if attempt == 2 or not _changed_under(exc):
                    raise
                logger.warning(
                    "Import %s: the catalogue changed under a batch; %s it again.",
                    self.job_id,
                    "resolving" if lock_first else "writing",
                )
        raise AssertionError("unreachable")


def _changed_under(exc: Exception) -> bool:
    """Whether a write failed on what another transaction did meanwhile: a reference it checked
    went missing (an IntegrityError), or PostgreSQL ended a deadlock by cancelling it."""
    return isinstance(exc, IntegrityError) or getattr(exc.__cause__, "sqlstate", None) == DEADLOCK


DEADLOCK = "40P01"


@contextlib.contextmanager
def _no_collections() -> Iterator[None]:
    """Pause the cyclic garbage collector while an import runs (the setting is process-wide).
    An import allocates millions of short-lived objects that reference counting frees (records
    hold no cycles), and the collector walked the live ones every few thousand records: 3 % of
    a 500 000-record import's Python time, when run every 100 000 allocations, and 10-20 % on
    SQLite with the default threshold (`bench imports`). Memory stays flat: such an import left
    46 objects in cycles, for the collector once it runs again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write_batch(job: ImportJob, batch: _Batch, catalogue: _Catalogue) -> None:
    """Insert one batch and record the job's progress in the same transaction; `job` holds the
    counts committed so far (a resumed run continues them), and the batch's once it commits.

    A batch that fails on a constraint is written once more from the start: a `local:` track it
    resolved can be merged away (and deleted) meanwhile (see _Catalogue), and the second time it
    resolves to the real track."""

    def write(attempt: int) -> dict[str, Any]:
        # The new counts reach `job` only once the batch has committed.
        added, duplicates = job.plays_added, job.duplicates
        skipped = dict(job.skipped)
        earliest, latest = job.earliest_play, job.latest_play
        records = batch.records
        if connection.vendor == "postgresql":
            # The batch and its progress commit together, so a commit lost to a server crash
            # is redone by the rerun: no need to wait for the WAL flush.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        if records:
            result = insert_plays(
                user=job.user,
                records=records,
                known_tracks=catalogue.known,
                track_ids=batch.track_ids if attempt == 1 else None,
                copies=batch.copies if attempt == 1 else None,
            )
            _keep_merged_from(job, result.merged_from)
            added += result.added
            duplicates += result.duplicates
            lo, hi = time_span(records)
            earliest = min(earliest or lo, lo)
            latest = max(latest or hi, hi)
        for reason, n in batch.skips.items():
            skipped[reason] = skipped.get(reason, 0) + n
        fields = {
            "records_processed": batch.position,
            "records_seen": batch.position,
            "plays_added": added,
            "duplicates": duplicates,
            "skipped": skipped,
            "earliest_play": earliest,
            "latest_play": latest,
            "bytes_processed": batch.bytes_now,
            "heartbeat_at": timezone.now(),
        }
        updated = ImportJob.objects.filter(
            pk=job.pk, status=ImportJob.Status.RUNNING, attempts=job.attempts
        ).update(**fields)
        if not updated:
            raise JobLost()
        return fields

    fields = catalogue.twice(write, lock_first=False)
    for name, value in fields.items():
        setattr(job, name, value)


def after_import(job: ImportJob) -> None:
    """What follows an import, in the worker and the command: each of the user's tracks' biggest
    day is counted (apps.history.totals), and on PostgreSQL the plays' and the totals' planner
    statistics are read again once it added plays.

    Autovacuum reads them only once a tenth of a table has changed, which a user's import on a
    server with others' plays may never reach. Until then the planner takes the user's plays for
    a handful, and some analyses run a hundred times slower: comparing two halves of ten years
    took over 20 s instead of 0.15 s, for the second of two users of 500 000 plays each. ANALYZE
    reads a fixed sample of each table: 0.6 s for the six there."""
    totals.refresh_best_days(job.user_id)
    added = job.status == ImportJob.Status.SUCCEEDED and job.plays_added
    if added and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {', '.join((Play._meta.db_table, *totals.TABLES))}")


# How long a failing import waits for a poll of its user to end before cleaning up anyway.
FAIL_LOCK_WAIT_SECONDS = 60.0


def fail_import(*, job: ImportJob, reason: str) -> None:
    """End a job as failed, remove the plays it added and put back those it merged into, so
    nothing half-written stays.

    It holds the user's collection lock meanwhile, so no poll folds a play into one of those
    plays as they go. A poll before it may have: such a play took the API's millisecond time
    (an export's plays are whole seconds), and it stays, as the API play it was, without what
    the export said of it. A fold that left no such mark goes with the import's plays, so the
    user's poll cursor moves back to before the earliest of them: the next poll asks Spotify
    again from there and stores such a play anew (a play Spotify still lists: its last 50)."""
    with _polls_held(job.user_id, wait=job.play_id_floor is not None), transaction.atomic():
        removed = 0
        if job.play_id_floor is not None:
            added = Play.objects.filter(
                user_id=job.user_id, pk__gt=job.play_id_floor, source__in=EXPORT_SOURCES
            )
            added.exclude(played_at=Trunc("played_at", "second", tzinfo=UTC)).update(
                source=Source.API, **API_PLAY_DETAILS
            )
            earliest = added.aggregate(earliest=Min("played_at"))["earliest"]
            removed, _ = added.delete()
            _put_back_merged(job)
            if earliest is not None:
                # A folded API play may lie up to the tolerance before the play it went into.
                rewind = earliest - timedelta(seconds=settings.DEDUP_TOLERANCE_SECONDS)
                SyncCheckpoint.objects.filter(
                    user_id=job.user_id, newest_played_at__gt=rewind
                ).update(newest_played_at=rewind)
        # None of its plays stays: neither do their count and span.
        kept = {"plays_added": 0, "earliest_play": None, "latest_play": None}
        ImportJob.objects.filter(pk=job.pk).update(**kept)
        for name, value in kept.items():
            setattr(job, name, value)
        job.mark_failed(reason)
    logger.warning(
        "Import %s of %s failed: %s (%d plays removed)", job.pk, job.user, reason, removed
    )


# The plays an import merged into, as they were: one statement for them all (UPDATE ... FROM,
# on both databases). A play keeps its track if its old one is gone: a local track that a real
# one of the same name took over since (apps.music.services.merge_local_tracks), with its plays.
_PUT_BACK = (
    "UPDATE history_play SET track_id = CASE WHEN EXISTS "  # noqa: S608 (constants only)
    "(SELECT 1 FROM music_track k WHERE k.id = m.track_id) "
    "THEN m.track_id ELSE history_play.track_id END, "
    + ", ".join(f"{name} = m.{name}" for name in PLAY_STATE if name != "track_id")
    + " FROM imports_mergedplay m WHERE m.job_id = %s AND history_play.id = m.play_id"
)


def _put_back_merged(job: ImportJob) -> None:
    """Put the plays stored before the import back as they were before it merged into them."""
    with connection.cursor() as cursor:
        cursor.execute(_PUT_BACK, [job.pk])
    MergedPlay.objects.filter(job=job).delete()


@contextlib.contextmanager
def _polls_held(user_id: int, *, wait: bool) -> Iterator[None]:
    """Hold the user's collection lock (polls and syncs skip while it is held), waiting up to
    FAIL_LOCK_WAIT_SECONDS for a running one to end; past that, go on without it."""
    deadline = time.monotonic() + FAIL_LOCK_WAIT_SECONDS
    while wait:
        with user_lock(user_id) as locked:
            if locked:
                yield
                return
        if time.monotonic() >= deadline:
            logger.warning("A poll of user %s held on; cleaning up without waiting more.", user_id)
            break
        time.sleep(0.5)
    yield


# --- Recovery and the watched folder ----------------------------------------------------------

STALE_AFTER = timedelta(minutes=5)
MAX_ATTEMPTS = 3


def requeue_stale_jobs(*, stale_after: timedelta = STALE_AFTER) -> list[int]:
    """Jobs left `running` by a dead worker (no heartbeat for `stale_after`) go back to pending
    and are queued again; after MAX_ATTEMPTS they fail. Pending jobs whose message was lost are
    queued again too. Returns the ids queued."""
    cutoff = timezone.now() - stale_after
    queued: list[int] = []
    stale = ImportJob.objects.filter(status=ImportJob.Status.RUNNING, heartbeat_at__lt=cutoff)
    for job in stale.select_related("user"):
        if job.attempts >= MAX_ATTEMPTS:
            fail_import(
                job=job,
                reason=f"The import was interrupted {job.attempts} times without finishing; "
                "it was stopped.",
            )
            continue
        with transaction.atomic():
            moved = ImportJob.objects.filter(
                pk=job.pk, status=ImportJob.Status.RUNNING, heartbeat_at__lt=cutoff
            ).update(status=ImportJob.Status.PENDING, heartbeat_at=timezone.now())
            if moved:
                logger.warning("Import %s had no live worker; queued again.", job.pk)
                queue_import(job)
                queued.append(job.pk)
    # Pending jobs whose message was lost: queued again, at most once per `stale_after` (the
    # heartbeat marks when), and not while another import of the same user is in progress (the
    # queued task retries then).
    forgotten = ImportJob.objects.filter(status=ImportJob.Status.PENDING).filter(
        Q(heartbeat_at__isnull=True, created_at__lt=cutoff) | Q(heartbeat_at__lt=cutoff)
    )
    other_in_progress = ImportJob.objects.filter(IN_PROGRESS, user_id=OuterRef("user_id")).exclude(
        pk=OuterRef("pk")
    )
    for job in forgotten.exclude(Exists(other_in_progress)):
        with transaction.atomic():
            ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
            queue_import(job)
        queued.append(job.pk)
    return queued


# A dropped file is taken once it has not changed for this long: a copy still being written
# would be read as a broken ZIP.
WATCH_SETTLE_SECONDS = 30


def scan_watch_dir(*, root: str | None = None) -> list[ImportJob]:
    """Queue an import for each new ZIP under `<root>/<username>/`; each file is imported once
    (by path and size), and not before it has stopped changing for WATCH_SETTLE_SECONDS."""
    root = root if root is not None else settings.IMPORT_WATCH_DIR
    if not root or not os.path.isdir(root):
        return []
    jobs: list[ImportJob] = []
    for user_dir in sorted(Path(root).iterdir()):
        if not user_dir.is_dir():
            continue
        user = User.objects.filter(username=user_dir.name).first()
        if user is None:
            logger.warning("Watched folder %s matches no user; ignored.", user_dir)
            continue
        for path in sorted(user_dir.glob("*.zip")):
            full = str(path.resolve())
            stat = path.stat()
            if time.time() - stat.st_mtime < WATCH_SETTLE_SECONDS:
                continue  # still being written, perhaps: the next scan looks again
            if ImportJob.objects.filter(user=user, local_path=full, size=stat.st_size).exists():
                continue
            with transaction.atomic():
                jobs.append(create_local_job(user=user, path=full))
    return jobs


def job_summary(job: ImportJob) -> dict[str, Any]:
    """The job as JSON: what the status endpoint and `import_export --json` print."""
    seconds = None
    if job.started_at and job.finished_at:
        seconds = round((job.finished_at - job.started_at).total_seconds(), 3)
    return {
        "id": job.pk,
        "file": job.display_name,
        "status": job.status,
        "progress": job.progress_pct,
        "formats": job.formats,
        "ignored_files": job.ignored_files,
        "records": job.records_seen,
        "plays_added": job.plays_added,
        "duplicates": job.duplicates,
        "skipped": job.skipped,
        "skipped_total": job.skipped_total,
        "earliest": job.earliest_play.isoformat() if job.earliest_play else None,
        "latest": job.latest_play.isoformat() if job.latest_play else None,
        "error": job.error,
        "seconds": seconds,
    }
