from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

# Why records were skipped: the codes `ImportJob.skipped` counts, and what they mean.
SKIP_REASONS = {
    "invalid_timestamp": "timestamp missing or malformed",
    "date_out_of_range": "date before 2006 or in the future",
    "invalid_ms_played": "ms_played not a number, negative or over 24 hours",
    "no_item": "no track, episode or chapter",
    "name_too_long": "a name over 512 characters",
    "invalid_field": "a field of the wrong type",
}


class ImportJob(models.Model):
    """One uploaded Spotify export and the state of its ingest.

    Counts and `records_processed` are written in the same transaction as each batch of plays, so
    a job resumed after a crash continues from the last committed batch and never double-counts.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    file = models.FileField(upload_to="imports/%Y/%m/", max_length=255, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    # A ZIP read where it lies (the import_export command, the watched folder), not uploaded.
    local_path = models.CharField(max_length=1024, blank=True, db_index=True)

    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    formats = models.JSONField(default=list, blank=True)
    ignored_files = models.JSONField(default=list, blank=True)
    records_total = models.PositiveIntegerField(null=True, blank=True)
    records_processed = models.PositiveIntegerField(default=0)
    records_seen = models.PositiveIntegerField(default=0)
    plays_added = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=dict, blank=True)
    earliest_play = models.DateTimeField(null=True, blank=True)
    latest_play = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Progress: uncompressed bytes of the Spotify files read so far, of the total.
    bytes_total = models.PositiveBigIntegerField(default=0)
    bytes_processed = models.PositiveBigIntegerField(default=0)
    # The highest play id when the import first started: a failed import removes the plays it
    # added above it, so nothing half-written stays.
    play_id_floor = models.BigIntegerField(null=True, blank=True)

    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return f"Import #{self.pk} {self.original_name} ({self.status})"

    @property
    def progress_pct(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 100.0
        if self.records_total:
            return min(100.0, round(100 * self.records_processed / self.records_total, 1))
        if not self.bytes_total:
            return 0.0
        return min(99.9, round(100 * self.bytes_processed / self.bytes_total, 1))

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)

    @property
    def path(self) -> str:
        """Where the ZIP is read from."""
        return self.local_path or self.file.path

    @property
    def display_name(self) -> str:
        return self.original_name or self.file.name.rsplit("/", 1)[-1]

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def skip_reasons(self) -> list[tuple[str, int]]:
        """(reason in words, records) per skip reason, the most frequent first."""
        return [
            (SKIP_REASONS.get(code, code.replace("_", " ")), n)
            for code, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0]))
        ]

    def mark_failed(self, reason: str) -> None:
        self.status = self.Status.FAILED
        self.error = reason
        self.finished_at = timezone.now()
        self.save(update_fields=["status", "error", "finished_at"])


class MergedPlay(models.Model):
    """A play stored before an import began, as it was before the import merged a record into
    it (a better time, the export's details, a track of the same name): a failed import puts it
    back, so nothing of the import stays; a finished one drops these rows. The fields are
    `apps.history.ingest.PLAY_STATE`."""

    # No index of its own: the unique (job, play_id) index serves lookups by job.
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="+", db_index=False)
    # No foreign keys: plays are deleted in bulk (a user's data), with no cascade to look up.
    play_id = models.BigIntegerField()
    track_id = models.BigIntegerField()
    played_at = models.DateTimeField()
    source = models.CharField(max_length=16)
    ms_played = models.PositiveIntegerField(null=True)
    reason_start = models.CharField(max_length=32, blank=True)
    reason_end = models.CharField(max_length=32, blank=True)
    skipped = models.BooleanField(null=True)
    shuffle = models.BooleanField(null=True)
    offline = models.BooleanField(null=True)
    platform = models.CharField(max_length=128, blank=True)
    conn_country = models.CharField(max_length=2, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "play_id"], name="mergedplay_once_a_job")
        ]

    def __str__(self) -> str:
        return f"Import #{self.job_id}: play {self.play_id} before it"
