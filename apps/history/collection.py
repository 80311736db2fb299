"""Collecting plays from Spotify: polling, the initial sync, and the fan-out that schedules them.

- `poll_user` asks for the plays `after` the newest one it has and follows `next`, so it costs
  exactly one request when nothing is new.
- `initial_sync` pages backwards with `before` (limit 50) when an account connects, until an
  empty page, no progress, INITIAL_SYNC_MAX_DAYS, INITIAL_SYNC_MAX_REQUESTS or repeated 429s.
- Both hold a per-user lock, record a JobRun, update the user's SyncCheckpoint and insert plays
  only through `apps.history.ingest.insert_plays`.
- The `request_*` functions queue the Celery tasks once the current transaction commits.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from apps.accounts import spotify
from apps.accounts.models import SpotifyAccount, User
from apps.accounts.spotify import SpotifyError, SpotifyNotConnected, SpotifyRateLimited
from apps.history.ingest import InsertResult, PlayRecord, insert_plays
from apps.history.models import JobRun, Play, SyncCheckpoint
from apps.music.models import Source, Track
from apps.music.normalize import LOCAL_PREFIX, normalize_name
from apps.music.services import TrackInfo, merge_local_tracks, resolve_tracks

logger = logging.getLogger(__name__)

PAGE_LIMIT = 50
# A poll follows `next` at most this many pages (50 plays each) before the next poll goes on.
MAX_POLL_PAGES = 20
# The per-user lock outlives any collection task (the longest time limit is 30 minutes), so it
# never lapses while its holder runs, and the holder can release it with a plain delete.
LOCK_TIMEOUT = 35 * 60
# The initial sync waits out a 429 up to this long, once; the second 429 in a row stops it.
SYNC_MAX_WAIT_SECONDS = 30
SYNC_MAX_RATE_LIMITS = 2


class StopReason:
    EMPTY_PAGE = "empty_page"
    NO_PROGRESS = "no_progress"
    MAX_DAYS = "max_days"
    MAX_REQUESTS = "max_requests"
    RATE_LIMITED = "rate_limited"
    ERROR = "error"


# --- Parsing Spotify's pages ----------------------------------------------------------------


def parse_played_at(value: str) -> datetime:
    """Spotify's `played_at` (the end of the play), with or without milliseconds, as UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def play_record(item: dict[str, Any]) -> PlayRecord | None:
    """A recently-played item as a PlayRecord; None for an item without a track."""
    track = item.get("track")
    if not track or not track.get("name") or not item.get("played_at"):
        return None
    return PlayRecord(
        track=track_info(track), played_at=parse_played_at(item["played_at"]), source=Source.API
    )


def track_info(track: dict[str, Any]) -> TrackInfo:
    """An API track (or episode) object as a TrackInfo."""
    artists = tuple(
        (str(a["name"]), a.get("id")) for a in track.get("artists") or [] if a and a.get("name")
    )
    album = track.get("album") or {}
    return TrackInfo(
        name=str(track["name"]),
        artist_name=artists[0][0] if artists else None,
        album_name=album.get("name") or None,
        uri=track.get("uri") or None,
        kind=Track.Kind.EPISODE if track.get("type") == "episode" else Track.Kind.MUSIC,
        duration_ms=track.get("duration_ms"),
        album_spotify_id=album.get("id") or None,
        artists=artists,
    )


def page_records(page: dict[str, Any]) -> list[PlayRecord]:
    return [r for r in map(play_record, page.get("items") or []) if r is not None]


# --- Checkpoints, locks and queueing --------------------------------------------------------


def ensure_checkpoint(*, user: User) -> SyncCheckpoint:
    checkpoint, _ = SyncCheckpoint.objects.get_or_create(user=user)
    return checkpoint


@contextmanager
def user_lock(user_id: int) -> Iterator[bool]:
    """A per-user lock in the cache: a user's poll and sync never run twice at once."""
    key = f"collect:lock:{user_id}"
    acquired = cache.add(key, uuid.uuid4().hex, timeout=LOCK_TIMEOUT)
    try:
        yield acquired
    finally:
        if acquired:
            cache.delete(key)


def _collecting_account(user: User) -> SpotifyAccount:
    account = SpotifyAccount.objects.filter(user=user).first()
    if account is None or account.refresh_token is None:
        raise SpotifyNotConnected("Spotify is not connected; connect it first.")
    if account.needs_reauth:
        raise SpotifyError(account.status_reason or "Reconnect Spotify to resume collecting.")
    if account.paused:
        raise SpotifyError("Collection is paused; resume it first.")
    return account


def request_poll(*, user: User) -> None:
    """Queue a poll of the user ("poll now") once the current transaction commits."""
    from apps.history import tasks

    _collecting_account(user)
    transaction.on_commit(lambda: tasks.poll_user.delay(user.pk))


def request_initial_sync(*, user: User) -> None:
    """Queue an initial sync of the user once the current transaction commits."""
    from apps.history import tasks

    if not settings.INITIAL_SYNC_ENABLED:
        raise SpotifyError("The initial sync is turned off (INITIAL_SYNC_ENABLED=0).")
    _collecting_account(user)
    transaction.on_commit(lambda: tasks.initial_sync.delay(user.pk))


def _collecting_accounts() -> QuerySet[SpotifyAccount]:
    """Accounts the scheduled tasks work for: active, unpaused, connected, of an active user."""
    return SpotifyAccount.objects.filter(
        status=SpotifyAccount.Status.ACTIVE,
        paused=False,
        refresh_token__isnull=False,
        user__is_active=True,
    )


def due_user_ids(*, now: datetime | None = None) -> list[int]:
    """Active, unpaused, connected users whose last poll is at least about an interval old."""
    now = now or timezone.now()
    # 10% slack, so a poll that ran a little after the previous fan-out is due at the next one.
    due_before = now - timedelta(seconds=settings.COLLECTOR_INTERVAL_SECONDS * 0.9)
    return list(
        _collecting_accounts()
        .filter(
            Q(user__sync_checkpoint__isnull=True)
            | Q(user__sync_checkpoint__last_poll_at__isnull=True)
            | Q(user__sync_checkpoint__last_poll_at__lt=due_before)
        )
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )


def queue_due_polls(*, now: datetime | None = None) -> int:
    """The Beat fan-out: one poll task per due user. Nothing is queued while Spotify calls are
    paused app-wide; the next fan-out picks the users up."""
    from apps.history import tasks

    paused_until = spotify.rate_limit_pause()
    if paused_until is not None:
        logger.info("Spotify calls are paused until %s; no polls queued", paused_until)
        return 0
    user_ids = due_user_ids(now=now)
    for user_id in user_ids:
        tasks.poll_user.delay(user_id)
    logger.info("Queued %d polls", len(user_ids))
    return len(user_ids)


# --- Polling --------------------------------------------------------------------------------


def _skipped(run: JobRun, reason: str) -> JobRun:
    run.status = JobRun.Status.SKIPPED
    run.finished_at = timezone.now()
    run.counts = {"skipped": reason}
    run.save()
    return run


def _finish(run: JobRun, *, status: str, counts: dict[str, Any], error: str = "") -> None:
    """Close the run: an update when it was saved at the start, else one insert."""
    if run.pk is not None:
        run.finish(status=status, counts=counts, error=error)
        return
    run.status, run.counts, run.error = status, counts, error
    run.finished_at = timezone.now()
    run.save()


def _record_failure(run: JobRun, checkpoint: SyncCheckpoint, exc: Exception, counts: dict) -> None:
    with transaction.atomic():
        checkpoint.last_poll_at = timezone.now()
        checkpoint.consecutive_errors += 1
        checkpoint.last_error = str(exc)
        checkpoint.save(update_fields=["last_poll_at", "consecutive_errors", "last_error"])
        _finish(run, status=JobRun.Status.FAILED, counts=counts, error=str(exc))
    logger.warning(
        "%s of %s failed: %s",
        run.get_type_display(),
        run.user,
        exc,
        extra={"user": run.user_id, "job_run": run.pk, "store": True},
    )


def _counts(result: InsertResult, **extra: Any) -> dict[str, Any]:
    return {
        **extra,
        "added": result.added,
        "duplicates": result.duplicates,
        "merged": result.merged,
    }


def poll_user(*, user: User, task_id: str = "") -> JobRun:
    """Fetch the plays newer than the newest one we have, store them, record the run.

    A SpotifyError is recorded on the run and the checkpoint, then raised again so the task can
    decide whether to retry.
    """
    run = JobRun(user=user, type=JobRun.Type.POLL, task_id=task_id)
    with user_lock(user.pk) as locked:
        if not locked:
            return _skipped(run, "another collection task for this user is running")
        # The account and the checkpoint in one query, read under the lock.
        account = (
            SpotifyAccount.objects.select_related("user__sync_checkpoint").filter(user=user).first()
        )
        if account is None or account.refresh_token is None or not account.is_collecting:
            return _skipped(run, "not collecting (disconnected, paused or needs reconnecting)")
        # A poll takes a moment: its run is written once, at the end, with the checkpoint.
        run.started_at = timezone.now()
        checkpoint = getattr(account.user, "sync_checkpoint", None) or ensure_checkpoint(user=user)
        after = checkpoint.newest_played_at
        requests_made = 0
        records: list[PlayRecord] = []
        try:
            page = spotify.recently_played(account=account, after=after, limit=PAGE_LIMIT)
            requests_made += 1
            records += page_records(page)
            # Without `after` (the very first poll), `next` pages backwards: that is the initial
            # sync's job, so only with `after` does the poll follow it.
            while after is not None and page.get("next") and requests_made < MAX_POLL_PAGES:
                page = spotify.recently_played(account=account, url=page["next"])
                requests_made += 1
                records += page_records(page)
            result = insert_plays(user=user, records=records)
        except Exception as exc:
            _record_failure(run, checkpoint, exc, {"requests": requests_made})
            raise
        now = timezone.now()
        newest = max((r.played_at for r in records), default=None)
        checkpoint.last_poll_at = now
        checkpoint.last_success_at = now
        checkpoint.consecutive_errors = 0
        checkpoint.last_error = ""
        fields = ["last_poll_at", "last_success_at", "consecutive_errors", "last_error"]
        if newest is not None and (after is None or newest > after):
            checkpoint.newest_played_at = newest
            fields.append("newest_played_at")
        if checkpoint.earliest_played_at is None and records:
            checkpoint.earliest_played_at = min(r.played_at for r in records)
            fields.append("earliest_played_at")
        with transaction.atomic():
            checkpoint.save(update_fields=fields)
            _finish(
                run,
                status=JobRun.Status.SUCCEEDED,
                counts=_counts(result, requests=requests_made, fetched=len(records)),
            )
    if result.added:
        logger.info("Polled %s: %d new plays", user.username, result.added, extra={"user": user.pk})
    return run


# --- Initial sync ---------------------------------------------------------------------------


def initial_sync(*, user: User, task_id: str = "") -> JobRun:
    """Page backwards through the recently-played list and store what it reaches.

    Records why it stopped and the earliest play reached, on the run and the checkpoint.
    """
    run = JobRun(user=user, type=JobRun.Type.INITIAL_SYNC, task_id=task_id)
    if not settings.INITIAL_SYNC_ENABLED:
        return _skipped(run, "INITIAL_SYNC_ENABLED is off")
    account = SpotifyAccount.objects.filter(user=user).first()
    if account is None or account.refresh_token is None or not account.is_collecting:
        return _skipped(run, "not collecting (disconnected, paused or needs reconnecting)")
    with user_lock(user.pk) as locked:
        if not locked:
            return _skipped(run, "another collection task for this user is running")
        run.save()
        checkpoint = ensure_checkpoint(user=user)
        started = timezone.now()
        checkpoint.initial_sync_started_at = started
        checkpoint.initial_sync_completed_at = None
        checkpoint.initial_sync_stop_reason = ""
        checkpoint.save(
            update_fields=[
                "initial_sync_started_at",
                "initial_sync_completed_at",
                "initial_sync_stop_reason",
            ]
        )
        cutoff = started - timedelta(days=settings.INITIAL_SYNC_MAX_DAYS)
        total = InsertResult()
        requests_made = fetched = rate_limits = consecutive_429 = 0
        before: datetime | None = None
        oldest_seen: datetime | None = None
        newest_seen: datetime | None = None
        error: SpotifyError | None = None
        while True:
            if requests_made >= settings.INITIAL_SYNC_MAX_REQUESTS:
                stop = StopReason.MAX_REQUESTS
                break
            try:
                page = spotify.recently_played(account=account, before=before, limit=PAGE_LIMIT)
            except SpotifyRateLimited as exc:
                rate_limits += 1
                consecutive_429 += 1
                if (
                    exc.quota
                    or consecutive_429 >= SYNC_MAX_RATE_LIMITS
                    or exc.retry_after > SYNC_MAX_WAIT_SECONDS
                ):
                    stop = StopReason.RATE_LIMITED
                    break
                time.sleep(exc.retry_after)
                continue
            except SpotifyError as exc:
                stop, error = StopReason.ERROR, exc
                break
            requests_made += 1
            consecutive_429 = 0
            records = page_records(page)
            if not records:
                stop = StopReason.EMPTY_PAGE
                break
            fetched += len(records)
            total.update(insert_plays(user=user, records=records))
            oldest = min(r.played_at for r in records)
            newest = max(r.played_at for r in records)
            newest_seen = max(newest_seen or newest, newest)
            if oldest_seen is not None and oldest >= oldest_seen:
                stop = StopReason.NO_PROGRESS
                break
            oldest_seen = oldest
            if oldest <= cutoff:
                stop = StopReason.MAX_DAYS
                break
            before = oldest

        counts = _counts(
            total,
            requests=requests_made,
            fetched=fetched,
            rate_limited=rate_limits,
            stop_reason=stop,
            earliest=oldest_seen.isoformat() if oldest_seen else None,
        )
        checkpoint.initial_sync_completed_at = timezone.now()
        checkpoint.initial_sync_stop_reason = stop
        if oldest_seen is not None:
            checkpoint.earliest_played_at = min(
                checkpoint.earliest_played_at or oldest_seen, oldest_seen
            )
        if newest_seen is not None:
            checkpoint.newest_played_at = max(
                checkpoint.newest_played_at or newest_seen, newest_seen
            )
        checkpoint.save(
            update_fields=[
                "initial_sync_completed_at",
                "initial_sync_stop_reason",
                "earliest_played_at",
                "newest_played_at",
            ]
        )
        if error is not None:
            _record_failure(run, checkpoint, error, counts)
            raise error
        run.finish(status=JobRun.Status.SUCCEEDED, counts=counts)
    logger.info(
        "Initial sync of %s stopped (%s) after %d requests: %d plays added, earliest %s",
        user.username,
        stop,
        requests_made,
        total.added,
        oldest_seen,
        extra={"user": user.pk, "job_run": run.pk, "store": True},
    )
    return run


# --- Resolving local tracks -----------------------------------------------------------------


def _search_query(value: str) -> str:
    return value.replace('"', " ")


def _same_song(item: dict[str, Any], name_key: str, artist_key: str) -> bool:
    artists = item.get("artists") or []
    return (
        item.get("type", "track") == "track"
        and bool(item.get("uri"))
        and normalize_name(item.get("name")) == name_key
        and bool(artists)
        and normalize_name((artists[0] or {}).get("name")) == artist_key
    )


def users_with_local_tracks() -> list[int]:
    """Collecting users with a local song not yet searched for."""
    return list(
        _collecting_accounts()
        .filter(
            Exists(
                Play.objects.filter(
                    user_id=OuterRef("user_id"),
                    track__uri__startswith=LOCAL_PREFIX,
                    track__kind=Track.Kind.MUSIC,
                    track__searched_at=None,
                )
            )
        )
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )


def resolve_local_tracks(*, user: User, task_id: str = "") -> JobRun:
    """Search Spotify for the real track of the user's most played local songs (Account Data
    rows, rows without a URI), up to RESOLVE_SEARCHES_PER_RUN, and fold each one found into it
    (merge_local_tracks), plays and all. A song is found when Spotify's result has the same
    normalised name and first artist; each local song is searched for once.

    Episodes and chapters are left local: Spotify's search results do not name their show."""
    run = JobRun(user=user, type=JobRun.Type.RESOLVE, task_id=task_id)
    with user_lock(user.pk) as locked:
        if not locked:
            return _skipped(run, "another collection task for this user is running")
        account = SpotifyAccount.objects.filter(user=user).first()
        if account is None or account.refresh_token is None or not account.is_collecting:
            return _skipped(run, "not collecting (disconnected, paused or needs reconnecting)")
        wanted = list(
            Track.objects.filter(
                uri__startswith=LOCAL_PREFIX,
                kind=Track.Kind.MUSIC,
                searched_at=None,
                primary_artist__isnull=False,
                play__user=user,
            )
            .annotate(plays=Count("play"))
            .order_by("-plays", "pk")
            .values_list("pk", "name", "name_key", "primary_artist_id", "primary_artist__name")[
                : settings.RESOLVE_SEARCHES_PER_RUN
            ]
        )
        run.started_at = timezone.now()
        searched = found = 0
        try:
            for pk, name, name_key, artist_id, artist_name in wanted:
                query = f'track:"{_search_query(name)}" artist:"{_search_query(artist_name)}"'
                page = spotify.search(account=account, q=query, types=["track"], limit=5)
                searched += 1
                items = (page.get("tracks") or {}).get("items") or []
                artist_key = normalize_name(artist_name)
                match = next((i for i in items if i and _same_song(i, name_key, artist_key)), None)
                with transaction.atomic():
                    Track.objects.filter(pk=pk).update(searched_at=timezone.now())
                    if match is not None:
                        real = resolve_tracks([track_info(match)])[0]
                        # A real track new to the catalogue has taken the local one already;
                        # one known before is folded into here.
                        merge_local_tracks([(real, Track.Kind.MUSIC, artist_id, name_key)])
                        found += not Track.objects.filter(pk=pk).exists()
        except SpotifyError as exc:
            checkpoint = ensure_checkpoint(user=user)
            _record_failure(run, checkpoint, exc, {"searched": searched, "found": found})
            raise
        _finish(
            run,
            status=JobRun.Status.SUCCEEDED,
            counts={"searched": searched, "found": found, "left": len(wanted) - searched},
        )
    if found:
        logger.info(
            "Found %d of %d local songs of %s on Spotify",
            found,
            searched,
            user.username,
            extra={"user": user.pk, "job_run": run.pk, "store": True},
        )
    return run


# --- What the ops tools and pages read ------------------------------------------------------


def sync_status(*, user: User) -> dict[str, Any]:
    """The user's collection state, token expiry and the app-wide Spotify pause."""
    account = SpotifyAccount.objects.filter(user=user).first()
    checkpoint = SyncCheckpoint.objects.filter(user=user).first()
    pause = spotify.rate_limit_status()

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "connected": account is not None and account.refresh_token is not None,
        "status": account.status if account else None,
        "status_reason": account.status_reason if account else "",
        "needs_reauth": bool(account and account.needs_reauth),
        "paused": bool(account and account.paused),
        "spotify_display_name": account.display_name if account else None,
        "authorized_at": iso(account.authorized_at) if account else None,
        "refresh_token_expires_at": iso(account.refresh_expires_at) if account else None,
        "days_until_token_expiry": account.days_until_refresh_expiry() if account else None,
        "last_poll_at": iso(checkpoint.last_poll_at) if checkpoint else None,
        "last_success_at": iso(checkpoint.last_success_at) if checkpoint else None,
        "newest_played_at": iso(checkpoint.newest_played_at) if checkpoint else None,
        "earliest_played_at": iso(checkpoint.earliest_played_at) if checkpoint else None,
        "initial_sync_completed_at": iso(checkpoint.initial_sync_completed_at)
        if checkpoint
        else None,
        "initial_sync_stop_reason": checkpoint.initial_sync_stop_reason if checkpoint else "",
        "consecutive_errors": checkpoint.consecutive_errors if checkpoint else 0,
        "last_error": checkpoint.last_error if checkpoint else "",
        "plays": Play.objects.for_user(user).count(),
        "spotify_paused_until": iso(pause["until"]) if pause else None,
        "spotify_pause_is_daily_quota": bool(pause and pause["quota"]),
        "poll_interval_seconds": settings.COLLECTOR_INTERVAL_SECONDS,
    }
