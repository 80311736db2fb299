from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.history.copies import COPIES
from apps.music.models import Album, Artist, Source, Track

if TYPE_CHECKING:
    from apps.accounts.models import User


class PlayQuerySet(models.QuerySet["Play"]):
    def for_user(self, user: User) -> PlayQuerySet:
        """The one way to read plays: every view, tool and selector starts here."""
        return self.filter(user=user)


class TrackCopies(models.Model):
    """The copies of their track's artist and album that plays and track totals carry (see
    `apps.history.copies`): ids without foreign keys, as the triggers keep them equal."""

    artist = models.ForeignKey(
        Artist,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    album = models.ForeignKey(
        Album,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )

    class Meta:
        abstract = True


class Play(TrackCopies):
    """One play of one item by one user, identified by (user, track, played_at).

    `played_at` is the UTC time the play ended. `ms_played` is unknown (null) for API plays:
    Spotify lists only plays over 30 seconds there.
    """

    Source = Source

    # On PostgreSQL both references are checked by triggers a statement at a time, in place of
    # their foreign keys' check of each row (apps.history.references, migration 0016). Neither
    # has an index of its own: the (user, played_at) index serves lookups by user, and the
    # unique (track, user, played_at) index those by track (migration 0018).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False)
    track = models.ForeignKey(Track, on_delete=models.PROTECT, db_index=False)
    played_at = models.DateTimeField()
    ms_played = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    reason_start = models.CharField(max_length=32, blank=True)
    reason_end = models.CharField(max_length=32, blank=True)
    skipped = models.BooleanField(null=True, blank=True)
    shuffle = models.BooleanField(null=True, blank=True)
    offline = models.BooleanField(null=True, blank=True)
    platform = models.CharField(max_length=128, blank=True)
    conn_country = models.CharField(max_length=2, blank=True)
    # Kept only with IMPORT_KEEP_SENSITIVE; dropped on import by default.
    ip_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True)
    export_username = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Copies of the track's artist, album (TrackCopies), kind and length, kept equal to
    # music_track's (see `apps.history.copies`), so that the analysis of a window reads the
    # plays alone, with no join to the catalogue.
    kind = models.CharField(max_length=8, choices=Track.Kind.choices, null=True)
    duration_ms = models.PositiveIntegerField(null=True)

    objects = PlayQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["track", "user", "played_at"], name="play_unique_track_user_played_at"
            )
        ]
        # The (user, played_at) index is play_user_time_cover, made in migrations 0002, 0005 and
        # 0011: covering on PostgreSQL (INCLUDE the track, ms_played, source and the track's
        # copies), plain on SQLite.

    def __str__(self) -> str:
        return f"{self.track_id} at {self.played_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.kind is None:  # a new play: its track's copies (apps.history.copies)
            track = Track.objects.values_list(*COPIES.values()).get(pk=self.track_id)
            for name, value in zip(COPIES, track, strict=True):
                setattr(self, name, value)
        super().save(*args, **kwargs)


class SyncCheckpoint(models.Model):
    """Where collection stands for one user."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sync_checkpoint"
    )
    initial_sync_started_at = models.DateTimeField(null=True, blank=True)
    initial_sync_completed_at = models.DateTimeField(null=True, blank=True)
    initial_sync_stop_reason = models.CharField(max_length=32, blank=True)
    earliest_played_at = models.DateTimeField(null=True, blank=True)
    newest_played_at = models.DateTimeField(null=True, blank=True)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    consecutive_errors = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"Sync of {self.user}"


class JobRun(models.Model):
    """One run of background work: a poll, an initial sync, a ZIP ingest or a resolve pass."""

    class Type(models.TextChoices):
        POLL = "poll", "Poll"
        INITIAL_SYNC = "initial_sync", "Initial sync"
        IMPORT_ZIP = "import_zip", "ZIP import"
        RESOLVE = "resolve", "Resolve local tracks"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    type = models.CharField(max_length=16, choices=Type.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    task_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-started_at"]),
            models.Index(fields=["type", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} #{self.pk} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def finish(self, *, status: str, counts: dict[str, Any] | None = None, error: str = "") -> None:
        self.status = status
        self.finished_at = timezone.now()
        if counts is not None:
            self.counts = counts
        self.error = error
        self.save(update_fields=["status", "finished_at", "counts", "error"])


class LogEvent(models.Model):
    """An important log line kept in the database for the admin; pruned after LOG_RETENTION_DAYS."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    level = models.PositiveSmallIntegerField(db_index=True)
    logger = models.CharField(max_length=128, db_index=True)
    message = models.TextField()
    request_id = models.CharField(max_length=128, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    job_run = models.ForeignKey(JobRun, null=True, blank=True, on_delete=models.SET_NULL)
    extra = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.logger}: {self.message[:80]}"

    @property
    def level_name(self) -> str:
        import logging

        return logging.getLevelName(self.level)


def totals_user() -> models.ForeignKey[Any, Any]:
    """The user of a totals row. Neither it nor TrackTotal's track has a constraint in the
    database: a totals row is counted from plays, whose own references are checked in the same
    transaction, and checking each new totals row again cost about 7 % of an import (some
    180 000 checks for 200 000 plays). Deleting a user through the ORM still deletes the rows.
    No index of its own: each table's unique index starts with the user."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False, db_constraint=False
    )


class TrackTotal(TrackCopies):
    """All-time sums of one user's plays of one track, kept exact by the triggers of
    `apps.history.totals` in the same transaction as the plays. All-time analysis reads these
    rows instead of every play.

    Short plays are those with a known `ms_played` under `min_ms` (LISTEN_MIN_MS when counted).
    """

    user = totals_user()
    track = models.ForeignKey(Track, on_delete=models.CASCADE, db_constraint=False)
    min_ms = models.PositiveIntegerField()
    plays = models.PositiveIntegerField(default=0)
    short_plays = models.PositiveIntegerField(default=0)
    unknown_ms_plays = models.PositiveIntegerField(default=0)
    ms_long = models.BigIntegerField(default=0)
    ms_short = models.BigIntegerField(default=0)
    first_play_at = models.DateTimeField(null=True)
    first_listen_at = models.DateTimeField(null=True)
    # The latest play and listen: with the firsts, whether a window holds the track without
    # reading its plays (a window's unique tracks, `apps.history.selectors`).
    last_play_at = models.DateTimeField(null=True)
    last_listen_at = models.DateTimeField(null=True)
    # The most plays and listens of this music track on one day of the user's time zone, and
    # the latest such day: the all-time biggest single-day repeat without reading every play.
    # Writes mark them stale; `totals.refresh_best_days` counts them again.
    best_day_plays = models.PositiveIntegerField(db_default=0)
    best_day_plays_on = models.DateField(null=True)
    best_day_listens = models.PositiveIntegerField(db_default=0)
    best_day_listens_on = models.DateField(null=True)
    best_days_stale = models.BooleanField(db_default=True)
    # Copies of the track's artist, album (TrackCopies), kind and length, kept equal to
    # music_track's by the triggers, so that all-time roll-ups read this table alone.
    kind = models.CharField(max_length=8, choices=Track.Kind.choices, db_default=Track.Kind.MUSIC)
    duration_ms = models.PositiveIntegerField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "track"], name="tracktotal_unique_user_track")
        ]
        indexes = [
            models.Index(fields=["user", "first_listen_at"], name="tracktotal_first_listen"),
            models.Index(fields=["user", "first_play_at"], name="tracktotal_first_play"),
            # Each artist's first listen (discoveries): an index range per artist.
            models.Index(
                fields=["user", "artist", "first_listen_at"], name="tracktotal_artist_first"
            ),
            models.Index(
                fields=["user"], condition=models.Q(best_days_stale=True), name="tracktotal_stale"
            ),
            # The biggest single-day repeat of all time: the first row of one of these. Only
            # counted days are in them: a new row (counted later, refresh_best_days) costs an
            # import no entry in either (a sixth of the track totals' time, `bench imports`).
            models.Index(
                fields=["user", "-best_day_listens", "-best_day_listens_on"],
                condition=models.Q(best_day_listens__gt=0),
                name="tracktotal_best_day_listens",
            ),
            models.Index(
                fields=["user", "-best_day_plays", "-best_day_plays_on"],
                condition=models.Q(best_day_plays__gt=0),
                name="tracktotal_best_day_plays",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.track_id}: {self.plays}"


class HourTotal(models.Model):
    """One user's plays in one UTC hour, kept exact like TrackTotal. Heatmaps, timelines and
    days with data come from these rows for zones whose offsets are whole hours."""

    user = totals_user()
    hour = models.DateTimeField()
    min_ms = models.PositiveIntegerField()
    plays = models.PositiveIntegerField(default=0)  # every kind and length
    podcast_plays = models.PositiveIntegerField(default=0)
    api_plays = models.PositiveIntegerField(default=0)
    extended_plays = models.PositiveIntegerField(default=0)
    account_plays = models.PositiveIntegerField(default=0)
    music_plays = models.PositiveIntegerField(default=0)
    music_short = models.PositiveIntegerField(default=0)
    music_unknown_ms = models.PositiveIntegerField(default=0)
    music_ms_long = models.BigIntegerField(default=0)
    music_ms_short = models.BigIntegerField(default=0)
    # Track durations standing in for the unknown ms_played of API plays.
    music_ms_estimated = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "hour"], name="hourtotal_unique_user_hour")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.hour:%Y-%m-%d %H}: {self.plays}"


class DayTotal(models.Model):
    """One user's plays on one day of their own time zone, kept exact like TrackTotal (and
    counted again when the zone changes): the days with data, and the timeline, of windows in
    the user's zone. The music sums are HourTotal's."""

    user = totals_user()
    day = models.DateField()
    min_ms = models.PositiveIntegerField()
    plays = models.PositiveIntegerField(default=0)  # every kind and length
    music_plays = models.PositiveIntegerField(default=0)
    music_short = models.PositiveIntegerField(default=0)
    music_unknown_ms = models.PositiveIntegerField(default=0)
    music_ms_long = models.BigIntegerField(default=0)
    music_ms_short = models.BigIntegerField(default=0)
    music_ms_estimated = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "day"], name="daytotal_unique_user_day")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day}: {self.plays}"


class ArtistPeriodTotal(models.Model):
    """One user's music plays of one artist in one month (or year) of their own zone, kept
    exact like TrackTotal (and counted again when the zone changes). A long window's artists
    are summed from a few years, months and days of plays instead of every play (comparing
    periods). Plays of tracks without an artist are left out: the day totals count them.

    The sums are DayTotal's music sums. On PostgreSQL the unique index (user, period, artist)
    also carries them (INCLUDE, migration 0014), so a window's rows are read from it alone."""

    user = totals_user()
    # An id the triggers keep, like the plays' copy: no foreign key to check on each write.
    artist = models.ForeignKey(
        Artist, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    min_ms = models.PositiveIntegerField()
    music_plays = models.PositiveIntegerField(default=0)
    music_short = models.PositiveIntegerField(default=0)
    music_unknown_ms = models.PositiveIntegerField(default=0)
    music_ms_long = models.BigIntegerField(default=0)
    music_ms_short = models.BigIntegerField(default=0)
    music_ms_estimated = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class ArtistMonthTotal(ArtistPeriodTotal):
    month = models.DateField()  # the month's first day

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "month", "artist"], name="artistmonthtotal_unique_user_month"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.month:%Y-%m} {self.artist_id}: {self.music_plays}"


class ArtistYearTotal(ArtistPeriodTotal):
    year = models.DateField()  # January 1st

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "year", "artist"], name="artistyeartotal_unique_user_year"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.year:%Y} {self.artist_id}: {self.music_plays}"
