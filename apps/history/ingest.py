"""The one bulk-insert path for plays, shared by polling and imports.

`insert_plays(user=..., records=...)` resolves each record's track, then inserts the plays that are
new and merges the ones already known:

- the same (user, track, played_at) is never stored twice;
- the same play from two sources is one play: a record matches an existing play of the same track
  from another source that ended within DEDUP_TOLERANCE_SECONDS, or, for Account Data rows
  (minute precision), within that minute;
- on a match the better data is kept: the most precise `played_at` (API milliseconds over export
  seconds over Account Data minutes) and the export's `ms_played` and play details.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from apps.accounts.models import User
from apps.history.models import Play
from apps.music.models import Source
from apps.music.services import TrackInfo, resolve_tracks

# How precise each source's played_at is; on a merge the most precise one is kept.
PRECISION: dict[str, int] = {Source.API: 3, Source.EXPORT_EXTENDED: 2, Source.EXPORT_ACCOUNT: 1}
# Which source's ms_played and play details are kept (the API gives none).
DETAIL: dict[str, int] = {Source.EXPORT_EXTENDED: 3, Source.EXPORT_ACCOUNT: 2, Source.API: 1}
DETAIL_FIELDS = (
    "ms_played",
    "reason_start",
    "reason_end",
    "skipped",
    "shuffle",
    "offline",
    "platform",
    "conn_country",
)


@dataclass(slots=True)
class PlayRecord:
    """One play as a source reports it, normalised: `played_at` is the UTC end time."""

    track: TrackInfo
    played_at: datetime
    source: str
    ms_played: int | None = None
    reason_start: str = ""
    reason_end: str = ""
    skipped: bool | None = None
    shuffle: bool | None = None
    offline: bool | None = None
    platform: str = ""
    conn_country: str = ""
    ip_addr: str | None = None
    user_agent: str = ""
    export_username: str = ""

    def match_window(self, tolerance: timedelta) -> tuple[datetime, datetime]:
        """The span of end times an existing play from another source may have to be this one."""
        if self.source == Source.EXPORT_ACCOUNT:
            return (self.played_at, self.played_at + timedelta(seconds=60))
        return (self.played_at - tolerance, self.played_at + tolerance)


@dataclass(slots=True)
class InsertResult:
    added: int = 0
    duplicates: int = 0
    merged: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None

    def update(self, other: InsertResult) -> None:
        self.added += other.added
        self.duplicates += other.duplicates
        self.merged += other.merged
        for when in (other.earliest, other.latest):
            if when is not None:
                self.earliest = min(self.earliest or when, when)
                self.latest = max(self.latest or when, when)


def truncate_to_precision(when: datetime, source: str) -> datetime:
    """`when` cut to the precision of a source's times: whole seconds for the extended export,
    whole minutes for Account Data, unchanged for the API."""
    if source == Source.EXPORT_EXTENDED:
        return when.replace(microsecond=0)
    if source == Source.EXPORT_ACCOUNT:
        return when.replace(second=0, microsecond=0)
    return when


def _window_overlaps(play_at: datetime, window: tuple[datetime, datetime], source: str) -> bool:
    if source == Source.EXPORT_ACCOUNT:
        return window[0] <= play_at < window[1]
    return window[0] <= play_at <= window[1]


def _existing_window(play: Play, tolerance: timedelta) -> tuple[datetime, datetime]:
    if play.source == Source.EXPORT_ACCOUNT:
        return (play.played_at, play.played_at + timedelta(seconds=60))
    return (play.played_at - tolerance, play.played_at + tolerance)


def _merge(play: Play, record: PlayRecord) -> list[str]:
    """Fold a matching record into an existing play; the fields that changed."""
    changed = []
    if PRECISION[record.source] > PRECISION[play.source] and play.played_at != record.played_at:
        play.played_at = record.played_at
        changed.append("played_at")
    if DETAIL[record.source] > DETAIL[play.source]:
        for name in DETAIL_FIELDS:
            value = getattr(record, name)
            if value not in (None, "") and getattr(play, name) != value:
                setattr(play, name, value)
                changed.append(name)
    return changed


@transaction.atomic
def insert_plays(*, user: User, records: Sequence[PlayRecord]) -> InsertResult:
    """Store a batch of plays for one user; the counts say what was new and what was known."""
    result = InsertResult()
    if not records:
        return result
    tolerance = timedelta(seconds=settings.DEDUP_TOLERANCE_SECONDS)
    track_ids = resolve_tracks(
        [r.track for r in records],
        source=records[0].source,
    )

    # Existing plays near the batch, for the exact and cross-source matches.
    lo = min(r.played_at for r in records) - tolerance - timedelta(seconds=60)
    hi = max(r.played_at for r in records) + tolerance + timedelta(seconds=60)
    existing: dict[int, list[Play]] = defaultdict(list)
    for play in Play.objects.for_user(user).filter(
        track_id__in=set(track_ids), played_at__gte=lo, played_at__lte=hi
    ):
        existing[play.track_id].append(play)

    to_create: list[Play] = []
    to_update: dict[int, tuple[Play, set[str]]] = {}
    for record, track_id in zip(records, track_ids, strict=True):
        window = record.match_window(tolerance)
        match = None
        for play in existing[track_id]:
            # The same play: the same time at the record's precision. A play merged earlier
            # keeps the most precise time (API milliseconds), so a re-imported export row
            # (whole seconds) still finds it.
            if truncate_to_precision(play.played_at, record.source) == record.played_at:
                match = play
                break
            if play.source != record.source and (
                _window_overlaps(play.played_at, window, record.source)
                or _window_overlaps(
                    record.played_at, _existing_window(play, tolerance), play.source
                )
            ):
                match = play
        if match is None:
            play = Play(
                user=user,
                track_id=track_id,
                played_at=record.played_at,
                ms_played=record.ms_played,
                source=record.source,
                reason_start=record.reason_start,
                reason_end=record.reason_end,
                skipped=record.skipped,
                shuffle=record.shuffle,
                offline=record.offline,
                platform=record.platform,
                conn_country=record.conn_country,
                ip_addr=record.ip_addr,
                user_agent=record.user_agent,
                export_username=record.export_username,
            )
            existing[track_id].append(play)
            to_create.append(play)
            continue
        result.duplicates += 1
        changed = _merge(match, record)
        if changed and match.pk is not None:
            fields = to_update.setdefault(match.pk, (match, set()))[1]
            fields.update(changed)
            result.merged += 1

    for play, fields in to_update.values():
        Play.objects.filter(pk=play.pk).update(**{name: getattr(play, name) for name in fields})
    if to_create:
        created = Play.objects.bulk_create(to_create, ignore_conflicts=True)
        result.added = len(created)
        times = [p.played_at for p in to_create]
        result.earliest, result.latest = min(times), max(times)
    return result
