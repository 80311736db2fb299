"""The analysis queries: every number the tools, the site's charts and the admin show.

Each function takes the user, a `Window` (from `resolve_window`) and the counting rule, runs its
aggregation in SQL through the one per-user queryset, and returns a msgspec Struct. The same
Structs are the tools' result types, so their JSON Schemas come from here.

The rules applied everywhere (MISSION.md, "Rules of the data"):

- a play is a *listen* when `ms_played >= LISTEN_MIN_MS`, or when `ms_played` is unknown (API
  plays: Spotify lists only plays over 30 s); `include_short=True` counts every play;
- *minutes* are the sum of `ms_played`, or of the track's duration for API plays, and are flagged
  as estimated when any play's duration was used;
- music statistics leave podcast episodes and audiobook chapters out;
- a play counts for its track's primary artist (the first API artist, or the export's album
  artist); artists and albums are keyed by normalised name;
- windows, day boundaries, weekdays and hours are in the user's IANA zone (or `tz`), DST
  included; all stored times are UTC.
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import functools
import heapq
import itertools
import operator
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, TypeVar, cast

import msgspec
from django.conf import settings
from django.db import connection
from django.db.models import (
    BigIntegerField,
    Count,
    Exists,
    F,
    Func,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import (
    Coalesce,
    ExtractYear,
)
from django.utils import timezone

from apps.history import totals as play_totals
from apps.history.models import (
    ArtistMonthTotal,
    ArtistYearTotal,
    DayTotal,
    HourTotal,
    JobRun,
    Play,
    SyncCheckpoint,
    TrackTotal,
)
from apps.music.models import Album, Artist, Source, Track
from apps.music.normalize import normalize_name

if TYPE_CHECKING:
    from apps.accounts.models import User

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
GAP_MIN_DAYS = 3
# Coverage lists at most this many gaps (the longest, in date order), and says how many there are.
MAX_GAPS = 50
MAX_LIMIT = 50
UNKNOWN_ARTIST = "Unknown artist"
UNKNOWN_SHOW = "Unknown show"
UNKNOWN_BOOK = "Unknown audiobook"
# Rows read for the biggest single-day repeat before ties are asked for one by one.
DAY_REPEAT_ROWS = 20
HOUR_SECONDS = 3600
DAY_SECONDS = 86400
# Below this share of days with data (or this many listens) a result says the data is thin.
THIN_DAYS_PCT = 50.0
THIN_LISTENS = 50

T = TypeVar("T")
Granularity = Literal["day", "week", "month"]
EntityType = Literal["artist", "track"]


class QueryError(ValueError):
    """A request the analysis can't answer as asked; the message says what to change."""


_shared: contextvars.ContextVar[dict[Any, Any] | None] = contextvars.ContextVar(
    "history_shared_reads", default=None
)


@contextlib.contextmanager
def shared_reads() -> Iterator[None]:
    """Within the block, analyses of the same user, window and rule share their reads (the
    per-track sums, the days with data, the short plays): for pages that show several at
    once. Outside it every call reads afresh."""
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


def _memo(key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    memo = _shared.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return cast(T, memo[key])


def _totals_usable() -> bool:
    """`apps.history.totals.usable()`, asked once per block of shared reads."""
    return _memo(("totals usable",), play_totals.usable)


# --- Windows and the counting rule ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """A span of local calendar days in a zone; `start_at`/`end_at` are its UTC instants.

    `start_date`/`end_date` are inclusive local dates; `start_at` is inclusive and `end_at`
    exclusive (local midnight after `end_date`). None on either side means unbounded.
    """

    tz: zoneinfo.ZoneInfo
    start_date: date | None
    end_date: date | None
    today: date

    @property
    def start_at(self) -> datetime | None:
        return local_midnight(self.start_date, self.tz) if self.start_date else None

    @property
    def end_at(self) -> datetime | None:
        if self.end_date is None:
            return None
        return local_midnight(self.end_date + timedelta(days=1), self.tz)

    @property
    def days(self) -> int | None:
        if self.start_date is None or self.end_date is None:
            return None
        return (self.end_date - self.start_date).days + 1

    def info(self) -> WindowInfo:
        return WindowInfo(
            start=self.start_date, end=self.end_date, days=self.days, tz=str(self.tz.key)
        )


def local_midnight(day: date, tz: zoneinfo.ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def get_zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise QueryError(
            f"Unknown time zone {name!r}: use an IANA name such as Europe/Paris."
        ) from None


def resolve_window(
    *,
    user: User,
    days: int | None = 90,
    start: date | None = None,
    end: date | None = None,
    tz: str | None = None,
    now: datetime | None = None,
) -> Window:
    """The window a call asks for, in `tz` (default the user's zone).

    `start`/`end` are inclusive local dates and win over `days`; either may be left out (open
    start: all time until `end`; open end: until today). Otherwise `days=N` is today and the
    N-1 days before it, and `days=0` (or None) is all time.
    """
    zone = get_zone(tz or user.timezone)
    today = (now or timezone.now()).astimezone(zone).date()
    if start is not None or end is not None:
        if start is not None and end is not None and start > end:
            raise QueryError(f"start ({start}) is after end ({end}).")
        return Window(tz=zone, start_date=start, end_date=end or today, today=today)
    if days is None or days == 0:
        return Window(tz=zone, start_date=None, end_date=None, today=today)
    if days < 0:
        raise QueryError("days must be 0 (all time) or a positive number of days.")
    return Window(tz=zone, start_date=today - timedelta(days=days - 1), end_date=today, today=today)


@dataclass(frozen=True, slots=True)
class Rule:
    """What counts as a listen."""

    include_short: bool = False
    min_ms_played: int = 0

    @classmethod
    def default(cls, include_short: bool = False) -> Rule:
        return cls(include_short=include_short, min_ms_played=settings.LISTEN_MIN_MS)

    @property
    def listen_q(self) -> Q:
        if self.include_short:
            return Q()
        return Q(ms_played__gte=self.min_ms_played) | Q(ms_played__isnull=True)

    @property
    def short_q(self) -> Q:
        return Q(ms_played__lt=self.min_ms_played)


# --- Result types (also the tools' output schemas) --------------------------------------------


class WindowInfo(msgspec.Struct, kw_only=True):
    start: date | None = None
    end: date | None = None
    days: int | None = None
    tz: str


class RuleInfo(msgspec.Struct, kw_only=True):
    min_ms_played: int
    include_short: bool
    short_plays_excluded: int
    description: str


class CoverageNote(msgspec.Struct, kw_only=True):
    days_with_data: int
    days_in_window: int
    days_with_data_pct: float
    first_play: datetime | None = None
    last_play: datetime | None = None
    thin: bool
    note: str


class Result(msgspec.Struct, kw_only=True):
    """What every analysis result carries."""

    window: WindowInfo
    rule: RuleInfo
    as_of: datetime
    coverage: CoverageNote


class Totals(msgspec.Struct, kw_only=True):
    listens: int
    minutes: float
    minutes_estimated: Annotated[
        bool,
        msgspec.Meta(description="True when some minutes come from track durations (API plays)."),
    ]
    unique_tracks: int
    unique_artists: int


class ArtistRank(msgspec.Struct, kw_only=True):
    rank: int
    name: str
    listens: int
    minutes: float
    share_pct: float
    spotify_uri: str | None = None


class TrackRank(msgspec.Struct, kw_only=True):
    rank: int
    name: str
    artist: str | None = None
    album: str | None = None
    listens: int
    minutes: float
    share_pct: float
    spotify_uri: str | None = None


class AlbumRank(msgspec.Struct, kw_only=True):
    rank: int
    name: str
    artist: str | None = None
    listens: int
    minutes: float
    share_pct: float


class TopArtists(Result, kw_only=True):
    totals: Totals
    artists: list[ArtistRank]


class TopTracks(Result, kw_only=True):
    totals: Totals
    tracks: list[TrackRank]


class TopAlbums(Result, kw_only=True):
    totals: Totals
    albums: list[AlbumRank]


class Heatmap(Result, kw_only=True):
    listens: int
    weekdays: list[str]
    hours: list[int]
    matrix: Annotated[
        list[list[int]],
        msgspec.Meta(description="7 rows (Monday..Sunday) of 24 listen counts (hours 0..23)."),
    ]
    weekday_totals: list[int]
    hour_totals: list[int]
    peak_weekday: str | None = None
    peak_hour: int | None = None


class DayRepeat(msgspec.Struct, kw_only=True):
    track: str
    artist: str | None = None
    date: date
    listens: int


class RepeatRate(Result, kw_only=True):
    listens: int
    unique_tracks: int
    repeat_rate: Annotated[float, msgspec.Meta(description="listens / unique tracks")]
    repeated_tracks: Annotated[int, msgspec.Meta(description="Tracks heard more than once.")]
    repeat_listens_pct: Annotated[
        float, msgspec.Meta(description="Share of listens going to tracks heard more than once.")
    ]
    most_replayed: list[TrackRank]
    biggest_day_repeat: DayRepeat | None = None


class Gap(msgspec.Struct, kw_only=True):
    start: date
    end: date
    days: int


class SourceCount(msgspec.Struct, kw_only=True):
    source: str
    label: str
    plays: int


class Coverage(Result, kw_only=True):
    first_play_overall: datetime | None = None
    last_play_overall: datetime | None = None
    first_play_in_window: datetime | None = None
    last_play_in_window: datetime | None = None
    plays_in_window: int
    days_with_data: int
    days_in_window: int
    days_with_data_pct: float
    gaps: Annotated[
        list[Gap],
        msgspec.Meta(description=f"The {MAX_GAPS} longest gaps of {GAP_MIN_DAYS}+ days, in order."),
    ]
    gaps_total: int
    plays_by_source: list[SourceCount]
    short_plays_excluded: int
    podcast_plays_excluded: int
    last_successful_poll: datetime | None = None
    note: str


class DiscoveredArtist(msgspec.Struct, kw_only=True):
    name: str
    first_listen: datetime
    listens: int


class TasteSummary(Result, kw_only=True):
    totals: Totals
    top_artists: list[ArtistRank]
    top_tracks: list[TrackRank]
    repeat_rate: float
    peak_weekday: str | None = None
    peak_hour: int | None = None
    discovered_artists_count: int
    discovered_artists: list[DiscoveredArtist]


class ShowRank(msgspec.Struct, kw_only=True):
    rank: int
    name: str
    plays: int
    episodes: int
    minutes: float


class EpisodeRank(msgspec.Struct, kw_only=True):
    rank: int
    name: str
    show: str | None = None
    plays: int
    minutes: float


class BookRank(msgspec.Struct, kw_only=True):
    rank: int
    name: str
    plays: int
    chapters: int
    minutes: float


class TopPodcasts(Result, kw_only=True):
    # plays, minutes: of podcast episodes; audiobooks count apart.
    plays: int
    minutes: float
    minutes_estimated: bool
    shows: list[ShowRank]
    episodes: list[EpisodeRank]
    audiobooks: list[BookRank]


class YearCount(msgspec.Struct, kw_only=True):
    year: int
    listens: int
    minutes: float


class EntityMatch(msgspec.Struct, kw_only=True):
    name: str
    artist: str | None = None
    listens: int


class EntityStats(Result, kw_only=True):
    query: str
    type: EntityType
    found: bool
    match: EntityMatch | None = None
    alternatives: list[EntityMatch]
    listens: int
    minutes: float
    minutes_estimated: bool
    first_listen: datetime | None = None
    last_listen: datetime | None = None
    by_year: list[YearCount]
    top_tracks: list[TrackRank]


class PeriodSummary(msgspec.Struct, kw_only=True):
    window: WindowInfo
    totals: Totals
    top_artists: list[ArtistRank]


class RankMove(msgspec.Struct, kw_only=True):
    name: str
    rank_a: int
    rank_b: int
    rank_change: Annotated[int, msgspec.Meta(description="Positive: climbed.")]
    listens_a: int
    listens_b: int


class ArtistListens(msgspec.Struct, kw_only=True):
    name: str
    listens: int


class Change(msgspec.Struct, kw_only=True):
    listens: int
    listens_pct: float | None = None
    minutes: float
    minutes_pct: float | None = None
    unique_artists: int
    unique_tracks: int


class ComparePeriods(msgspec.Struct, kw_only=True):
    a: PeriodSummary
    b: PeriodSummary
    change: Change
    risers: list[RankMove]
    fallers: list[RankMove]
    new_artists: list[ArtistListens]
    vanished_artists: list[ArtistListens]
    rule: RuleInfo
    as_of: datetime
    coverage: CoverageNote


class Period(msgspec.Struct, kw_only=True):
    start: date
    listens: int
    minutes: float


class Timeline(Result, kw_only=True):
    granularity: Granularity
    listens: int
    minutes: float
    minutes_estimated: bool
    periods: list[Period]


# --- Querysets ----------------------------------------------------------------------------------

MUSIC = Track.Kind.MUSIC
PODCAST_KINDS = (Track.Kind.EPISODE, Track.Kind.CHAPTER)
PLAYED_MS = Coalesce(F("ms_played"), F("duration_ms"), Value(0))


def window_plays(user: User, window: Window) -> QuerySet[Play]:
    """The user's plays of every kind inside the window."""
    plays = Play.objects.for_user(user)
    if window.start_at is not None:
        plays = plays.filter(played_at__gte=window.start_at)
    if window.end_at is not None:
        plays = plays.filter(played_at__lt=window.end_at)
    return plays


def music_listens(user: User, window: Window, rule: Rule) -> QuerySet[Play]:
    """The music plays in the window that count under the rule."""
    return window_plays(user, window).filter(rule.listen_q, kind=MUSIC)


class Summary(NamedTuple):
    """The window's sums over every track counted."""

    listens: int
    ms: int
    tracks: int
    estimated: int  # listens of unknown duration, counted with the track's length
    artists: int  # known artists
    repeated_tracks: int  # tracks heard more than once
    repeated_listens: int  # listens to those tracks


# The parts of a window's read besides its sums (see Counted): the best artists, albums and
# tracks. Each costs a grouping or a sort of every track, so a read brings only those its
# callers named.
ARTISTS, ALBUMS, TRACKS = "artists", "albums", "tracks"
PARTS = (ARTISTS, ALBUMS, TRACKS)
_ARTISTS = (
    "SELECT artist_id, CAST(SUM(n) AS BIGINT) AS n, CAST(SUM(ms) AS BIGINT) AS ms "
    "FROM t GROUP BY artist_id"
)
_NO_CUT = 2**31 - 1
# Each part's grouping over t: (its name, its SQL, or None for t itself, its key, its tag).
_GROUPS = {
    ARTISTS: ("ar", _ARTISTS, "artist_id", 1),
    ALBUMS: (
        "al",
        "SELECT album_id, CAST(SUM(n) AS BIGINT) AS n, CAST(SUM(ms) AS BIGINT) AS ms "
        "FROM t WHERE album_id IS NOT NULL GROUP BY album_id",
        "album_id",
        2,
    ),
    TRACKS: ("t", None, "track_id", 3),
}


def _read_sql(parts: frozenset[str], *, every_artist: bool) -> str:
    """Over t: the sums (tagged 0), and of each part, the artists (1), albums (2) or tracks (3)
    as good as the MAX_LIMIT-th by listens and minutes, found with a bounded sort (the cut),
    far cheaper than ranking them all; fewer than that, all of them. `every_artist` makes no
    cut of the artists (an offset past the end). Built from constants and integers only."""
    ctes, arms = [], []
    for part in PARTS:
        if part not in parts:
            continue
        name, select, key, tag = _GROUPS[part]
        offset = _NO_CUT if part == ARTISTS and every_artist else MAX_LIMIT - 1
        if select:
            ctes.append(f"{name} AS ({select})")
        ctes.append(
            f"{name}_cut AS (SELECT n, ms FROM {name} ORDER BY n DESC, ms DESC "  # noqa: S608 (constants)
            f"LIMIT 1 OFFSET {offset})"
        )
        arms.append(
            f"SELECT {tag}, {key}, n, ms, 0, 0, 0, 0, 0 FROM {name} WHERE NOT EXISTS "  # noqa: S608 (constants)
            f"(SELECT 1 FROM {name}_cut) OR (n, ms) >= (SELECT n, ms FROM {name}_cut)"
        )
    # Known artists: counted off their grouping when it is read anyway.
    artists = (
        "(SELECT COUNT(artist_id) FROM ar)" if ARTISTS in parts else "COUNT(DISTINCT artist_id)"
    )
    sums = (
        "SELECT 0, NULL, CAST(SUM(n) AS BIGINT), CAST(SUM(ms) AS BIGINT), COUNT(*), "  # noqa: S608 (constants)
        "CAST(SUM(unknown) AS BIGINT), SUM(CASE WHEN n > 1 THEN 1 ELSE 0 END), "
        f"CAST(SUM(CASE WHEN n > 1 THEN n ELSE 0 END) AS BIGINT), {artists} FROM t"
    )
    return "".join(f", {cte}" for cte in ctes) + " " + " UNION ALL ".join([sums, *arms])


class Counted:
    """The listens to aggregate, with how to count them: raw plays, or, for all time on
    PostgreSQL, the exact per-track totals (`apps.history.totals`). Both reach the track as
    `track__…` in `rows`, and carry its artist, album and kind as `artist`, `album` and `kind`.

    `tracks` is the SQL (and its parameters) of one row per track: (track_id, artist_id,
    album_id, listens, ms, plays of unknown duration), ms including the estimated minutes of
    plays of unknown duration. One query over it gives the sums and the `parts` named before it
    (with `every_artist` set, every artist), so a few hundred rows reach Python, or a few
    thousand; a part named only later is read on its own."""

    def __init__(
        self, rows: QuerySet[Any], listens: Any, *, tracks: tuple[str, tuple[Any, ...]]
    ) -> None:
        self.rows, self.listens, self.tracks = rows, listens, tracks
        self.parts: set[str] = set()
        self.every_artist = False
        self._summary: Summary | None = None
        self._read_parts: dict[str, Any] = {}

    def per_track(self, select: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run `select` over t(track_id, artist_id, album_id, n, ms, unknown)."""
        sql, tracks_params = self.tracks
        with connection.cursor() as cursor:
            cursor.execute(  # the inner SQL is built from constants and Django's, params apart
                f"WITH t(track_id, artist_id, album_id, n, ms, unknown) AS ({sql}) " + select,
                (*tracks_params, *params),
            )
            return cursor.fetchall()

    def _read(self, *more: str) -> None:
        """One pass over the window: the sums, and the parts named (`parts`, `more`) and not
        read yet."""
        parts = frozenset({*self.parts, *more} - self._read_parts.keys())
        rows = self.per_track(_read_sql(parts, every_artist=self.every_artist))
        sums = next(row[2:] for row in rows if row[0] == 0)
        listens, total_ms, tracks, estimated, repeated, repeated_listens, artists_known = (
            v or 0 for v in sums
        )
        self._summary = Summary(
            listens=listens,
            ms=total_ms,
            tracks=tracks,
            estimated=estimated,
            artists=artists_known,
            repeated_tracks=repeated,
            repeated_listens=repeated_listens,
        )
        tags = {part: _GROUPS[part][3] for part in parts}
        for part in parts & {ARTISTS, ALBUMS}:
            self._read_parts[part] = {r[1]: (r[2], r[3]) for r in rows if r[0] == tags[part]}
        if TRACKS in parts:
            best = sorted((-row[2], -row[3], row[1]) for row in rows if row[0] == tags[TRACKS])
            ranked: list[tuple[int, int, int, int]] = []
            for i, (n, ms, track) in enumerate(best):
                tied = i > 0 and best[i - 1][:2] == (n, ms)
                ranked.append((ranked[-1][0] if tied else i + 1, track, -n, -ms))
            self._read_parts[TRACKS] = ranked

    def _part(self, part: str) -> Any:
        if part not in self._read_parts:
            self._read(part)
        return self._read_parts[part]

    @property
    def summary(self) -> Summary:
        if self._summary is None:
            self._read()
        assert self._summary is not None
        return self._summary

    def best_tracks(self, limit: int) -> list[tuple[int, int, int]]:
        """(track_id, listens, ms) of the `limit` best tracks by listens and minutes, and of
        those tying with the last of them (limit <= MAX_LIMIT)."""
        return [
            (track, n, ms) for position, track, n, ms in self._part(TRACKS) if position <= limit
        ]

    def artist_listens(self) -> dict[Any, tuple[int, int]]:
        """(listens, ms) of the MAX_LIMIT best artists and whatever ties with the last of them
        (None: tracks without one): enough for `_best` with any limit up to MAX_LIMIT. Callers
        must not change the result."""
        return cast(dict[Any, tuple[int, int]], self._part(ARTISTS))

    def every_artist_listens(self) -> dict[Any, tuple[int, int]]:
        """(listens, ms) of every artist: from the read of the artists when it brought them
        all (`every_artist` was set before it, or there are no more than the cut keeps), else
        (another analysis sharing the read came first) from a read of their own."""
        artists = self.artist_listens()
        if len(artists) - (None in artists) == self.summary.artists:
            return artists
        return {artist: (n, ms) for artist, n, ms in self.per_track(_ARTISTS)}

    def best_albums(self) -> dict[Any, tuple[int, int]]:
        """(listens, ms) of the MAX_LIMIT best albums and whatever ties with the last of
        them: enough for `_best` with any limit up to MAX_LIMIT."""
        return cast(dict[Any, tuple[int, int]], self._part(ALBUMS))

    def artists(self) -> tuple[Totals, list[tuple[Any, int, int]]]:
        """The totals, and every artist as (artist_id, listens, ms) in rank order (listens,
        minutes, then `_tie_order`), from one grouping by the database: for callers that need
        neither albums nor tracks (comparing periods)."""
        # Ordered by listens and minutes here; only the ties are ordered in Python.
        rows = self.per_track(
            "SELECT s.*, a.name_key FROM (SELECT artist_id, CAST(SUM(n) AS BIGINT) AS n, "
            "CAST(SUM(ms) AS BIGINT) AS ms, COUNT(*), CAST(SUM(unknown) AS BIGINT) "
            "FROM t GROUP BY artist_id) s LEFT JOIN music_artist a ON a.id = s.artist_id "
            "ORDER BY s.n DESC, s.ms DESC"
        )
        keys, listens, ms, tracks, unknown, name_keys = (
            zip(*rows, strict=True) if rows else [()] * 6
        )
        totals = Totals(
            listens=sum(listens),
            minutes=_minutes(sum(ms)),
            minutes_estimated=any(unknown),
            unique_tracks=sum(tracks),
            unique_artists=len(keys) - (None in keys),
        )
        names = dict(zip(keys, name_keys, strict=True))
        return totals, _break_ties(
            list(zip(keys, listens, ms, strict=True)), names, normalize_name(UNKNOWN_ARTIST)
        )


def _best(groups: dict[Any, tuple[int, int]], limit: int) -> list[tuple[Any, int, int]]:
    """The `limit` best keys by listens, then minutes (and whatever ties with the last of them),
    in that order; `_ranked` orders the ties."""
    items: Iterable[tuple[Any, tuple[int, int]]] = groups.items()
    if len(groups) > limit:
        cutoff = heapq.nlargest(limit, groups.values())[-1]
        items = [kv for kv in items if kv[1] >= cutoff]
    ordered = sorted(items, key=operator.itemgetter(1), reverse=True)
    return [(k, v[0], v[1]) for k, v in ordered]


def _tied(best: list[tuple[Any, int, int]]) -> list[Any]:
    """The keys whose (listens, minutes) another key shares: only they need a name to rank."""
    counts = Counter((n, m) for _, n, m in best)
    return [k for k, n, m in best if counts[(n, m)] > 1]


def _tie_order(key: Any, name_key: str | None, unknown_key: str) -> tuple[str, str]:
    """Where a row goes among those with the same listens and minutes: by its normalised name
    (`unknown_key` for the row without an artist or show, key None), then its key."""
    return (unknown_key if key is None else name_key or "", str(key))


def _ranked(
    best: list[tuple[Any, int, int]],
    limit: int | None,
    model: type[Any],
    unknown: str = UNKNOWN_ARTIST,
) -> list[tuple[Any, int, int]]:
    """`_best` rows (in order of listens and minutes) put in their final order: ties broken by
    `_tie_order`, the row without an artist or show named `unknown`."""
    tied = _tied(best)
    if tied:
        name_keys = dict(model.objects.filter(pk__in=tied).values_list("pk", "name_key"))
        best = _break_ties(best, name_keys, normalize_name(unknown))
    return best[:limit]


def _break_ties(
    rows: list[tuple[Any, int, int]], name_keys: dict[Any, str | None], unknown_key: str
) -> list[tuple[Any, int, int]]:
    """(key, listens, minutes) rows in order of listens and minutes, with each run of equal
    neighbours put in `_tie_order` (`name_keys`: the normalised name of each tied key)."""
    ordered: list[tuple[Any, int, int]] = []
    for _, run in itertools.groupby(rows, key=operator.itemgetter(1, 2)):
        tied = list(run)
        if len(tied) > 1:
            tied.sort(key=lambda row: _tie_order(row[0], name_keys.get(row[0]), unknown_key))
        ordered.extend(tied)
    return ordered


def _all_time(window: Window) -> bool:
    return window.start_at is None and window.end_at is None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OFFSETS_UNTIL = datetime(2060, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=64)
def _zone_changes(key: str) -> tuple[list[datetime], list[int]]:
    """The UTC instants at which the zone's offset changes from 1970 to 2060, and its offset in
    seconds before the first change and from each change on.

    Sampled daily; a changing day is searched hour by hour, then minute by minute."""
    zone = zoneinfo.ZoneInfo(key)

    def offset(at: datetime) -> int:
        return int((at.astimezone(zone).utcoffset() or timedelta(0)).total_seconds())

    changes: list[datetime] = []
    offsets = [offset(EPOCH)]
    day = EPOCH
    while day < OFFSETS_UNTIL:
        following = day + timedelta(days=1)
        if offset(following) != offsets[-1]:
            at = day
            for step in (timedelta(hours=1), timedelta(minutes=1)):
                while offset(at + step) == offsets[-1]:
                    at += step
            at += timedelta(minutes=1)
            changes.append(at)
            offsets.append(offset(at))
        day = following
    return changes, offsets


def _changes_between(
    key: str, lo: datetime | None, hi: datetime | None
) -> tuple[list[datetime], list[int]]:
    """The zone's offset changes strictly between lo and hi (None: unbounded), and its offset
    before the first of them and from each on: all that times between lo and hi need."""
    changes, offsets = _zone_changes(key)
    i = 0 if lo is None else bisect.bisect_right(changes, lo)
    j = len(changes) if hi is None else bisect.bisect_left(changes, hi)
    return changes[i:j], offsets[i : j + 1]


def _whole_hours(key: str, lo: datetime | None, hi: datetime | None) -> bool:
    """Whether the zone's local days and hours between lo and hi (None: unbounded) are unions
    of UTC hours, so HourTotal rows answer for them: its offsets there are whole hours, and it
    changes them on whole UTC hours (America/Goose_Bay changed at 00:01 local until 2011)."""
    changes, offsets = _changes_between(key, lo, hi)
    return not any(seconds % 3600 for seconds in offsets) and not any(
        at.minute or at.second for at in changes
    )


def _local_date(day_number: int) -> date:
    return date(1970, 1, 1) + timedelta(days=day_number)


class _LocalNumber(Func):
    """Whole `unit`s of seconds (3600: hours, 86400: days) since 1970-01-01 00:00 local time,
    of a timestamp in `tz`: its UTC epoch plus the zone's offset at that instant. The offset is
    found by a binary search over the zone's offset changes between `start` and `end` (None:
    unbounded), the window the timestamps are in: `width_bucket` on PostgreSQL; on SQLite,
    which has no arrays, nested CASEs. Plain arithmetic, where Django's zone-aware date
    functions call Python once a row on SQLite."""

    output_field = BigIntegerField()

    def __init__(
        self,
        expression: Any,
        *,
        tz: zoneinfo.ZoneInfo,
        unit: int,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        super().__init__(expression)
        self.tz, self.unit, self.start, self.end = tz, int(unit), start, end

    def _between(self) -> tuple[list[datetime], list[int]]:
        return _changes_between(str(self.tz.key), self.start, self.end)

    def as_sql(self, compiler: Any, connection: Any, *args: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        changes, offsets = self._between()
        # date_part's double holds a microsecond apart (extract's numeric is exact but slower).
        epoch = f"floor(date_part('epoch', {sql}))::bigint"
        if not changes:
            return f"(({epoch} + %s) / {self.unit})", (*params, offsets[0])
        offset = f"(%s::int[])[width_bucket({sql}, %s::timestamptz[]) + 1]"
        return f"(({epoch} + {offset}) / {self.unit})", (*params, offsets, *params, changes)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, sql_params = compiler.compile(self.source_expressions[0])
        # Whole seconds only (strftime rounds a fraction to the millisecond, which can carry
        # into the next second); the format goes as a parameter, as '%s' in the SQL would be
        # read as one.
        epoch = f"CAST(strftime(%s, substr({sql}, 1, 19)) AS INTEGER)"
        params = ("%s", *sql_params)
        changes, values = self._between()
        bounds = [int(c.timestamp()) for c in changes]
        out: list[Any] = []

        def tree(i: int, j: int) -> str:  # values[i..j], bounds[i..j-1] between them
            if i == j:
                return str(values[i])
            m = (i + j + 1) // 2
            out.extend(params)
            below = tree(i, m - 1)  # the parameters go in the order the SQL is written
            above = tree(m, j)
            return f"CASE WHEN {epoch} < {bounds[m - 1]} THEN {below} ELSE {above} END"

        out.extend(params)
        offset = tree(0, len(values) - 1)
        return f"(({epoch} + {offset}) / {self.unit})", tuple(out)


def _local_number(window: Window, unit: int, column: str = "played_at") -> _LocalNumber:
    """A play's (or an HourTotal row's, column "hour") local hour (unit 3600) or day (86400)
    number in the window's zone."""
    return _LocalNumber(column, tz=window.tz, unit=unit, start=window.start_at, end=window.end_at)


def _hours(user: User, window: Window) -> QuerySet[HourTotal] | None:
    """The user's per-hour totals inside the window, when they answer exactly (PostgreSQL with
    current totals, and a zone whose local hours are UTC hours while the plays last);
    otherwise None."""
    if not _totals_usable():
        return None
    lo, hi = window.start_at, window.end_at
    if lo is None or hi is None:
        first, last = _bounds(user)
        lo = lo or first
        hi = hi or (last + timedelta(seconds=1) if last else None)
    if not _whole_hours(str(window.tz.key), lo, hi):
        return None
    hours = HourTotal.objects.filter(user=user)
    if window.start_at is not None:
        hours = hours.filter(hour__gte=window.start_at)
    if window.end_at is not None:
        hours = hours.filter(hour__lt=window.end_at)
    return hours


def _hour_listens(rule: Rule) -> Any:
    return F("music_plays") if rule.include_short else F("music_plays") - F("music_short")


def _hour_ms(rule: Rule) -> Any:
    ms = F("music_ms_long") + F("music_ms_estimated")
    return ms + F("music_ms_short") if rule.include_short else ms


def counted(
    user: User,
    window: Window,
    rule: Rule,
    kind: str = MUSIC,
    *,
    parts: Iterable[str] = (),
    every_artist: bool = False,
) -> Counted:
    """What to count for the window under the rule, for one kind of item. `parts` are what the
    caller reads besides the sums (of PARTS), so that one read brings them together;
    `every_artist` is for callers of `Counted.every_artist_listens`."""
    c = _memo(("counted", user.pk, window, rule, kind), lambda: _counted(user, window, rule, kind))
    c.parts.update(parts)
    c.every_artist = c.every_artist or every_artist
    return c


def _counted(user: User, window: Window, rule: Rule, kind: str) -> Counted:
    if _all_time(window) and _totals_usable():
        n = F("plays") if rule.include_short else F("plays") - F("short_plays")
        known = F("ms_long") + F("ms_short") if rule.include_short else F("ms_long")
        ms = known + F("unknown_ms_plays") * Coalesce(F("duration_ms"), Value(0))
        rows = (
            TrackTotal.objects.filter(user=user, kind=kind)
            .annotate(listen_n=n, listen_ms=ms)
            .filter(listen_n__gt=0)
        )
        tracks = rows.values_list(
            "track_id", "artist_id", "album_id", "listen_n", "listen_ms", "unknown_ms_plays"
        )
        return Counted(rows, Sum("listen_n"), tracks=tracks.query.sql_with_params())
    listened = window_plays(user, window).filter(rule.listen_q)
    plays = listened.filter(kind=kind)
    return Counted(plays, Count("*"), tracks=_play_tracks(listened, kind))


def _play_tracks(plays: QuerySet[Play], kind: str) -> tuple[str, tuple[Any, ...]]:
    """`Counted.tracks` from plays: summed per track, with the track's copies the plays carry
    (no join to the catalogue)."""
    # The copies are the same on each play of a track: taken with min(), not grouped by, which
    # is cheaper over hundreds of thousands of plays.
    sums, params = (
        plays.filter(kind=kind)
        .values_list("track_id")
        .annotate(
            track_artist=Min("artist_id"),
            track_album=Min("album_id"),
            track_length=Min("duration_ms"),
            n=Count("*"),
            ms=Sum("ms_played"),
            unknown=Count("played_at", filter=Q(ms_played=None)),
        )
        .order_by()
        .query.sql_with_params()
    )
    return (
        "SELECT s.track_id, s.track_artist, s.track_album, s.n, "  # noqa: S608 (Django's SQL)
        "COALESCE(s.ms, 0) + s.unknown * COALESCE(s.track_length, 0), s.unknown "
        f"FROM ({sums}) s",
        params,
    )


def _minutes(ms: int | None) -> float:
    return round((ms or 0) / 60_000, 1)


def _pct(part: float, whole: float) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}.")
    return limit


def _totals(c: Counted) -> Totals:
    summary = c.summary
    return Totals(
        listens=summary.listens,
        minutes=_minutes(summary.ms),
        minutes_estimated=summary.estimated > 0,
        unique_tracks=summary.tracks,
        unique_artists=summary.artists,
    )


def _rule_info(
    user: User, window: Window, rule: Rule, days: dict[date, int] | None = None
) -> RuleInfo:
    if rule.include_short:
        short = 0
        text = "Every music play counts, short ones included."
    else:
        short = sum((_days(user, window) if days is None else days).values())
        text = (
            f"A play counts as a listen from {rule.min_ms_played // 1000} s, or when Spotify "
            "gave no duration (API plays list only plays over 30 s)."
        )
    return RuleInfo(
        min_ms_played=rule.min_ms_played,
        include_short=rule.include_short,
        short_plays_excluded=short,
        description=text,
    )


def _days(user: User, window: Window) -> dict[date, int]:
    """The local dates in the window with at least one play of any kind, each with its number
    of short music plays (those the rule leaves out unless short plays are included)."""
    return _memo(("_days", user.pk, window), lambda: _read_days(user, window))


def _day_totals(user: User, window: Window) -> QuerySet[DayTotal] | None:
    """The user's per-day totals inside the window, when they answer for its zone (PostgreSQL
    with current totals, and the user's own zone); otherwise None."""
    if not play_totals.days_counted_in(user.pk, str(window.tz.key)):
        return None
    days = DayTotal.objects.filter(user=user)
    if window.start_date is not None:
        days = days.filter(day__gte=window.start_date)
    if window.end_date is not None:
        days = days.filter(day__lte=window.end_date)
    return days


def _read_days(user: User, window: Window) -> dict[date, int]:
    days = _day_totals(user, window)
    if days is not None:
        return dict(days.values_list("day", "music_short"))
    hours = _hours(user, window)
    if hours is not None:
        rows = (
            hours.annotate(day_number=_local_number(window, DAY_SECONDS, "hour"))
            .values_list("day_number")
            .annotate(short=Sum("music_short"))
            .order_by()
        )
        return {_local_date(day): short for day, short in rows}
    short = Rule.default().short_q & Q(kind=MUSIC)
    return {
        _local_date(day): n
        for day, n in window_plays(user, window)
        .annotate(day_number=_local_number(window, DAY_SECONDS))
        .values_list("day_number")
        .annotate(short=Count("played_at", filter=short))
        .order_by()
    }


def _bounds(user: User) -> tuple[datetime | None, datetime | None]:
    """The user's first and last play."""
    return _memo(("bounds", user.pk), lambda: _read_bounds(user))


def _read_bounds(user: User) -> tuple[datetime | None, datetime | None]:
    # Two queries: each is one index probe, where both in one query scan the user's index range
    # on SQLite.
    plays = Play.objects.for_user(user)
    return (
        plays.aggregate(first=Min("played_at"))["first"],
        plays.aggregate(last=Max("played_at"))["last"],
    )


def _span(
    user: User, window: Window, seen: Iterable[date] = ()
) -> tuple[date | None, date | None, datetime | None, datetime | None]:
    """The local dates a window covers (an open side is clipped to the data, and reaches the
    local dates `seen` in it; an end in the future stops at today), and the first and last play
    overall. A later play can fall on an earlier local date than the first one's, where a zone
    turns its clocks back across midnight (America/Santiago)."""
    first, last = _bounds(user)
    start = window.start_date
    end = window.end_date
    seen = list(seen)
    if start is None and first is not None:
        start = min([first.astimezone(window.tz).date(), *seen])
    if end is None or end > window.today:
        # Days that have not come yet are not missing data: an end past today stops at today.
        latest = (
            window.today if last is None else max(window.today, last.astimezone(window.tz).date())
        )
        latest = max([latest, *seen])
        end = latest if end is None else min(end, latest)
    return start, end, first, last


def _coverage_note(user: User, window: Window, days: dict[date, int] | None = None) -> CoverageNote:
    days = _days(user, window) if days is None else days
    start, end, first, last = _span(user, window, days)
    # Nought for a window wholly after today: none of its days has come.
    days_in_window = max(0, (end - start).days + 1) if start and end else 0
    with_data = len(days)
    pct = _pct(with_data, days_in_window)
    thin = with_data == 0 or pct < THIN_DAYS_PCT
    if first is None:
        note = "No plays stored yet: connect Spotify or import your Spotify data export."
    elif with_data == 0:
        note = "No plays in this window; the data runs from {} to {} (days=0 is all time).".format(
            first.astimezone(window.tz).date(), last.astimezone(window.tz).date() if last else "?"
        )
    elif thin:
        note = (
            f"Thin data: plays on {with_data} of {days_in_window} days ({pct}%). Answers may "
            "under-count; importing the Spotify export (Extended Streaming History) fills gaps."
        )
    else:
        note = f"Plays on {with_data} of {days_in_window} days ({pct}%)."
    return CoverageNote(
        days_with_data=with_data,
        days_in_window=days_in_window,
        days_with_data_pct=pct,
        first_play=first,
        last_play=last,
        thin=thin,
        note=note,
    )


def _envelope(
    user: User, window: Window, rule: Rule, days: dict[date, int] | None = None
) -> dict[str, Any]:
    """What every result carries: the window, the rule, when, and the coverage note."""
    days = _days(user, window) if days is None else days
    return {
        "window": window.info(),
        "rule": _rule_info(user, window, rule, days),
        "as_of": timezone.now(),
        "coverage": _coverage_note(user, window, days),
    }


# --- Rankings -----------------------------------------------------------------------------------


def _artist_names(keys: Iterable[Any]) -> dict[Any, tuple[str, str | None]]:
    """(name, Spotify id) of each artist; the unknown artist (None) is named too."""
    found: dict[Any, tuple[str, str | None]] = {
        pk: (name, spotify_id)
        for pk, name, spotify_id in Artist.objects.filter(
            pk__in=[k for k in keys if k is not None]
        ).values_list("pk", "name", "spotify_id")
    }
    found[None] = (UNKNOWN_ARTIST, None)
    return found


def _artist_list(c: Counted, limit: int) -> list[dict[str, Any]]:
    """The best artists (by listens, then minutes, then name) as dicts with name and Spotify
    id."""
    best = _ranked(_best(c.artist_listens(), limit), limit, Artist)
    names = _artist_names(k for k, _, _ in best)
    return [
        {
            "artist_id": k,
            "name": names[k][0],
            "spotify_id": names[k][1],
            "listens": n,
            "ms": m,
        }
        for k, n, m in best
    ]


def _artist_ranks(c: Counted, total: int, limit: int) -> list[ArtistRank]:
    return [
        ArtistRank(
            rank=rank,
            name=row["name"],
            listens=row["listens"],
            minutes=_minutes(row["ms"]),
            share_pct=_pct(row["listens"], total),
            spotify_uri=f"spotify:artist:{row['spotify_id']}" if row["spotify_id"] else None,
        )
        for rank, row in enumerate(_artist_list(c, limit), start=1)
    ]


def _track_rank(rank: int, row: dict[str, Any], total: int) -> TrackRank:
    uri = row["uri"]
    return TrackRank(
        rank=rank,
        name=row["name"],
        artist=row["artist"],
        album=row["album"],
        listens=row["listens"],
        minutes=_minutes(row["ms"]),
        share_pct=_pct(row["listens"], total),
        spotify_uri=uri if uri.startswith("spotify:") else None,
    )


def _track_ranks(c: Counted, total: int, limit: int) -> list[TrackRank]:
    best = _ranked(c.best_tracks(limit), limit, Track)
    tracks: dict[int, dict[str, Any]] = {
        t["id"]: {
            **t,
            "artist": t["primary_artist__name"],
            "album": t["album__name"],
        }
        for t in Track.objects.filter(pk__in=[k for k, _, _ in best]).values(
            "id", "name", "uri", "primary_artist__name", "album__name"
        )
    }
    return [
        _track_rank(rank, {**tracks[k], "listens": n, "ms": m}, total)
        for rank, (k, n, m) in enumerate(best, start=1)
    ]


def top_artists(
    *, user: User, window: Window, include_short: bool = False, limit: int = 10
) -> TopArtists:
    """Artists ranked by listens (ties: minutes, then name), with minutes and share."""
    rule = Rule.default(include_short)
    c = counted(user, window, rule, parts=[ARTISTS])
    totals = _totals(c)
    return TopArtists(
        **_envelope(user, window, rule),
        totals=totals,
        artists=_artist_ranks(c, totals.listens, _limit(limit)),
    )


def top_tracks(
    *, user: User, window: Window, include_short: bool = False, limit: int = 10
) -> TopTracks:
    """Tracks ranked by listens (ties: minutes, then name), with minutes and share."""
    rule = Rule.default(include_short)
    c = counted(user, window, rule, parts=[TRACKS])
    totals = _totals(c)
    return TopTracks(
        **_envelope(user, window, rule),
        totals=totals,
        tracks=_track_ranks(c, totals.listens, _limit(limit)),
    )


def top_albums(
    *, user: User, window: Window, include_short: bool = False, limit: int = 10
) -> TopAlbums:
    """Albums (by normalised name and album artist) ranked by listens, with minutes and share."""
    rule = Rule.default(include_short)
    c = counted(user, window, rule, parts=[ALBUMS])
    totals = _totals(c)
    groups = c.best_albums()
    limit = _limit(limit)
    best = _ranked(_best(groups, limit), limit, Album)
    found = Album.objects.select_related("artist").in_bulk([k for k, _, _ in best])
    albums = [
        AlbumRank(
            rank=rank,
            name=found[k].name,
            artist=getattr(found[k].artist, "name", None),
            listens=n,
            minutes=_minutes(m),
            share_pct=_pct(n, totals.listens),
        )
        for rank, (k, n, m) in enumerate(best[:limit], start=1)
    ]
    return TopAlbums(**_envelope(user, window, rule), totals=totals, albums=albums)


# --- Heatmap ------------------------------------------------------------------------------------


def _heatmap_matrix(user: User, window: Window, rule: Rule) -> list[list[int]]:
    """Listens per local weekday and hour (callers must not change the result)."""
    return _memo(("heatmap", user.pk, window, rule), lambda: _read_heatmap(user, window, rule))


def _read_heatmap(user: User, window: Window, rule: Rule) -> list[list[int]]:
    matrix = [[0] * 24 for _ in range(7)]
    hours = _hours(user, window)
    rows: QuerySet[Any]
    listens: Any
    # Local hours of the week, counted from Thursday 00:00 (1970-01-01 was a Thursday).
    if hours is not None:
        rows = hours.annotate(hour_of_week=_local_number(window, HOUR_SECONDS, "hour") % 168)
        listens = Sum(_hour_listens(rule))
    else:
        rows = music_listens(user, window, rule).annotate(
            hour_of_week=_local_number(window, HOUR_SECONDS) % 168
        )
        listens = Count("*")
    for hour_of_week, n in rows.values_list("hour_of_week").annotate(n=listens).order_by():
        matrix[(hour_of_week // 24 + 3) % 7][hour_of_week % 24] += n or 0
    return matrix


def _peaks(matrix: list[list[int]]) -> tuple[str | None, int | None, list[int], list[int]]:
    weekday_totals = [sum(row) for row in matrix]
    hour_totals = [sum(matrix[d][h] for d in range(7)) for h in range(24)]
    if not any(weekday_totals):
        return None, None, weekday_totals, hour_totals
    peak_day = max(range(7), key=lambda d: (weekday_totals[d], -d))
    peak_hour = max(range(24), key=lambda h: (hour_totals[h], -h))
    return WEEKDAYS[peak_day], peak_hour, weekday_totals, hour_totals


def listening_heatmap(*, user: User, window: Window, include_short: bool = False) -> Heatmap:
    """Listens by local weekday (Monday first) and hour, with totals and peaks."""
    rule = Rule.default(include_short)
    matrix = _heatmap_matrix(user, window, rule)
    peak_day, peak_hour, weekday_totals, hour_totals = _peaks(matrix)
    return Heatmap(
        **_envelope(user, window, rule),
        listens=sum(weekday_totals),
        weekdays=WEEKDAYS,
        hours=list(range(24)),
        matrix=matrix,
        weekday_totals=weekday_totals,
        hour_totals=hour_totals,
        peak_weekday=peak_day,
        peak_hour=peak_hour,
    )


# --- Repeat rate ------------------------------------------------------------------------------


def repeat_rate(
    *, user: User, window: Window, include_short: bool = False, limit: int = 10
) -> RepeatRate:
    """How much the user replays: listens per unique track, the most replayed tracks and the
    biggest single-day repeat of one track."""
    rule = Rule.default(include_short)
    c = counted(user, window, rule, parts=[TRACKS])
    total, unique = c.summary.listens, c.summary.tracks
    return RepeatRate(
        **_envelope(user, window, rule),
        listens=total,
        unique_tracks=unique,
        repeat_rate=round(total / unique, 2) if unique else 0.0,
        repeated_tracks=c.summary.repeated_tracks,
        repeat_listens_pct=_pct(c.summary.repeated_listens, total),
        most_replayed=_track_ranks(c, total, _limit(limit)),
        biggest_day_repeat=_biggest_day_repeat(user, window, rule),
    )


def _biggest_day_repeat(user: User, window: Window, rule: Rule) -> DayRepeat | None:
    """The most listens of one track on one local day (ties: the latest day, then the track
    name). Plays are counted per track and day alone; names are read for the winners only.
    All time in the user's own zone, each track's best day is kept in its TrackTotal row."""
    days: QuerySet[Any]
    if _all_time(window) and play_totals.best_days_current(user.pk, str(window.tz.key)):
        n, on = ("plays", "plays_on") if rule.include_short else ("listens", "listens_on")
        days = (
            TrackTotal.objects.filter(user=user, **{f"best_day_{n}__gt": 0})
            .annotate(day=F(f"best_day_{on}"), n=F(f"best_day_{n}"))
            .values_list("track_id", "day", "n")
            .order_by("-n", "-day")
        )
    else:
        days = (
            window_plays(user, window)
            .filter(rule.listen_q)
            .filter(kind=MUSIC)
            .annotate(day=_local_number(window, DAY_SECONDS))
            .values_list("track_id", "day")
            .annotate(n=Count("*"))
            .order_by("-n", "-day")
        )
    rows = list(days[:DAY_REPEAT_ROWS])
    if not rows:
        return None
    _, day, n = rows[0]
    tied = [track_id for track_id, d, count in rows if (d, count) == (day, n)]
    if len(tied) == DAY_REPEAT_ROWS:
        tied = [track_id for track_id, _, _ in days.filter(day=day, n=n)]
    track = (
        Track.objects.filter(pk__in=tied)
        .order_by("name", "pk")
        .values("name", artist=F("primary_artist__name"))
        .first()
    )
    assert track is not None
    return DayRepeat(
        track=track["name"],
        artist=track["artist"],
        date=day if isinstance(day, date) else _local_date(day),  # a day number from plays
        listens=n,
    )


# --- Coverage -----------------------------------------------------------------------------------


def _gaps(dates: list[date], start: date | None, end: date | None) -> list[Gap]:
    """Runs of GAP_MIN_DAYS or more days without plays between start and end (inclusive)."""
    if start is None or end is None:
        return []
    gaps = []
    previous = start - timedelta(days=1)
    for day in [*(d for d in dates if start <= d <= end), end + timedelta(days=1)]:
        missing = (day - previous).days - 1
        if missing >= GAP_MIN_DAYS:
            gaps.append(
                Gap(
                    start=previous + timedelta(days=1),
                    end=day - timedelta(days=1),
                    days=missing,
                )
            )
        previous = day
    return gaps


def coverage(*, user: User, window: Window, include_short: bool = False) -> Coverage:
    """How complete the data is in the window: days with data, gaps, sources, what was left
    out, and the last successful poll."""
    rule = Rule.default(include_short)
    plays = window_plays(user, window)
    days = _days(user, window)
    dates = sorted(days)
    start, end, first, last = _span(user, window, dates)
    if end is not None:
        end = min(end, window.today) if window.end_date is None else end
    row = plays.aggregate(first=Min("played_at"), last=Max("played_at"))
    hours = _hours(user, window)
    if hours is not None:
        sums = hours.aggregate(
            plays=Sum("plays"),
            podcasts=Sum("podcast_plays"),
            api=Sum("api_plays"),
            export_extended=Sum("extended_plays"),
            export_account=Sum("account_plays"),
        )
        row["plays"], row["podcasts"] = sums["plays"] or 0, sums["podcasts"] or 0
        counts = [(key, sums[key] or 0) for key in Source.values if sums[key]]
    else:
        row |= plays.aggregate(
            plays=Count("*"), podcasts=Count("played_at", filter=Q(kind__in=PODCAST_KINDS))
        )
        counts = list(plays.values_list("source").annotate(n=Count("*")).order_by())
    labels = dict(Source.choices)
    by_source = [
        SourceCount(source=source, label=labels.get(source, source), plays=n)
        for source, n in sorted(counts, key=lambda sn: (-sn[1], sn[0]))
    ]
    checkpoint = SyncCheckpoint.objects.filter(user=user).first()
    note = _coverage_note(user, window, days)
    gaps = _gaps(dates, start, end)
    text = note.note
    if gaps:
        longest = max(gaps, key=lambda g: g.days)
        text += (
            f" {len(gaps)} gap(s) of {GAP_MIN_DAYS}+ days without plays; the longest is "
            f"{longest.days} days ({longest.start} to {longest.end})."
        )
    rule_info = _rule_info(user, window, rule, days)
    return Coverage(
        window=window.info(),
        rule=rule_info,
        as_of=timezone.now(),
        coverage=note,
        first_play_overall=first,
        last_play_overall=last,
        first_play_in_window=row["first"],
        last_play_in_window=row["last"],
        plays_in_window=row["plays"],
        days_with_data=note.days_with_data,
        days_in_window=note.days_in_window,
        days_with_data_pct=note.days_with_data_pct,
        gaps=sorted(sorted(gaps, key=lambda g: -g.days)[:MAX_GAPS], key=lambda g: g.start),
        gaps_total=len(gaps),
        plays_by_source=by_source,
        short_plays_excluded=rule_info.short_plays_excluded,
        podcast_plays_excluded=row["podcasts"],
        last_successful_poll=checkpoint.last_success_at if checkpoint else None,
        note=text,
    )


# --- Taste summary ------------------------------------------------------------------------------


def _artist_firsts(user: User, rule: Rule, ids: Iterable[int]) -> dict[int, datetime]:
    """The first listen ever of each artist."""
    if _totals_usable():
        first = "first_play_at" if rule.include_short else "first_listen_at"
        rows = TrackTotal.objects.filter(user=user, kind=MUSIC, artist_id__in=ids).values_list(
            "artist_id"
        )
        return dict(rows.annotate(first=Min(first)).exclude(first=None).order_by())
    return dict(
        Play.objects.for_user(user)
        .filter(rule.listen_q, kind=MUSIC, artist_id__in=ids)
        .values_list("artist_id")
        .annotate(first=Min("played_at"))
        .order_by()
    )


def _discovered(
    user: User, window: Window, rule: Rule, c: Counted, limit: int
) -> tuple[int, list[DiscoveredArtist]]:
    """Artists whose first listen ever falls inside the window, most listened first."""
    start = window.start_at
    if start is None:
        # Every artist heard in a window open to the past is first heard in it: only the best
        # need their first listen.
        best = _best({k: v for k, v in c.artist_listens().items() if k is not None}, limit)
        firsts = _artist_firsts(user, rule, [k for k, _, _ in best])
        return c.summary.artists, _discoveries(best, firsts, limit)
    if _totals_usable():
        # The artists with a track first heard inside the window, and none heard before it:
        # one query on the first-listen indexes. Their first listen is their earliest track's,
        # a listen of the window, so each has listens in it.
        first = "first_play_at" if rule.include_short else "first_listen_at"
        tracks = TrackTotal.objects.filter(user=user, kind=MUSIC).exclude(artist__isnull=True)
        fresh = tracks.filter(**{f"{first}__gte": start})
        if window.end_at is not None:
            fresh = fresh.filter(**{f"{first}__lt": window.end_at})
        heard_before = tracks.filter(artist_id=OuterRef("artist_id"), **{f"{first}__lt": start})
        firsts = dict(
            fresh.filter(~Exists(heard_before))
            .values_list("artist_id")
            .annotate(first=Min(first))
            .order_by()
        )
        listens = _listens_of(user, window, rule, c, list(firsts))
    else:
        listens = {k: v for k, v in c.every_artist_listens().items() if k is not None}
        firsts = _artist_firsts(user, rule, list(listens)) if listens else {}
    found = [k for k in listens if k in firsts and firsts[k] >= start]
    return len(found), _discoveries(_best({k: listens[k] for k in found}, limit), firsts, limit)


# Past this many artists missing from the window's best, all of them are read instead.
_FEW_ARTISTS = 1000


def _listens_of(
    user: User, window: Window, rule: Rule, c: Counted, ids: list[int]
) -> dict[Any, tuple[int, int]]:
    """(listens, ms) in the window of the artists `ids`, all heard in it: from the window's
    read for those among its best, else from their own plays (usually a few, so the read need
    not bring every artist)."""
    best = c.artist_listens()
    missing = [k for k in ids if k not in best]
    if not missing:
        return best
    if len(missing) > _FEW_ARTISTS:
        return c.every_artist_listens()
    rows = (
        music_listens(user, window, rule)
        .filter(artist_id__in=missing)
        .values_list("artist_id")
        .annotate(n=Count("*"), ms=Sum(PLAYED_MS))
        .order_by()
    )
    return {**best, **{k: (n, ms) for k, n, ms in rows}}


def _discoveries(
    best: list[tuple[Any, int, int]], firsts: dict[int, datetime], limit: int
) -> list[DiscoveredArtist]:
    best = _ranked(best, limit, Artist)
    names = _artist_names(k for k, _, _ in best)
    return [
        DiscoveredArtist(name=names[k][0], first_listen=firsts[k], listens=n) for k, n, _ in best
    ]


def taste_summary(*, user: User, window: Window, include_short: bool = False) -> TasteSummary:
    """Everything at a glance: totals, top 10s, repeat rate, peak time, discoveries, coverage."""
    rule = Rule.default(include_short)
    # Without the totals, a window with a start needs every artist's listens for its
    # discoveries.
    c = counted(
        user,
        window,
        rule,
        parts=[ARTISTS, TRACKS],
        every_artist=window.start_at is not None and not _totals_usable(),
    )
    totals = _totals(c)
    peak_day, peak_hour, _, _ = _peaks(_heatmap_matrix(user, window, rule))
    count, discovered = _discovered(user, window, rule, c, 10)
    return TasteSummary(
        **_envelope(user, window, rule),
        totals=totals,
        top_artists=_artist_ranks(c, totals.listens, 10),
        top_tracks=_track_ranks(c, totals.listens, 10),
        repeat_rate=round(totals.listens / totals.unique_tracks, 2) if totals.unique_tracks else 0,
        peak_weekday=peak_day,
        peak_hour=peak_hour,
        discovered_artists_count=count,
        discovered_artists=discovered,
    )


# --- Podcasts -----------------------------------------------------------------------------------


def _by_show(
    user: User, window: Window, rule: Rule, kind: str
) -> tuple[dict[Any, tuple[Any, int, int, int]], dict[Any, list[int]]]:
    """Per episode or chapter (`kind`): (show or book, plays, ms, plays of unknown duration);
    and per show or book: [ms, plays, items]."""
    per_item = {
        track_id: (show_id, n, ms, unknown)
        for track_id, show_id, n, ms, unknown in counted(user, window, rule, kind=kind).per_track(
            "SELECT track_id, album_id, n, ms, unknown FROM t"
        )
    }
    by_show: dict[Any, list[int]] = {}
    for show_id, n, ms, _ in per_item.values():
        show = by_show.setdefault(show_id, [0, 0, 0])
        show[0], show[1], show[2] = show[0] + ms, show[1] + n, show[2] + 1
    return per_item, by_show


def _best_shows(by_show: dict[Any, list[int]], limit: int, unknown: str) -> list[Any]:
    """Shows or books ranked by minutes, then plays, then name."""
    return _ranked(
        _best({k: (v[0], v[1]) for k, v in by_show.items()}, limit), limit, Album, unknown
    )


def top_podcasts(
    *, user: User, window: Window, include_short: bool = False, limit: int = 10
) -> TopPodcasts:
    """Podcast shows and episodes, and audiobooks, ranked by minutes."""
    rule = Rule.default(include_short)
    limit = _limit(limit)
    per_episode, by_show = _by_show(user, window, rule, Track.Kind.EPISODE)
    _, by_book = _by_show(user, window, rule, Track.Kind.CHAPTER)
    best_shows = _best_shows(by_show, limit, UNKNOWN_SHOW)
    best_books = _best_shows(by_book, limit, UNKNOWN_BOOK)
    best_episodes = _ranked(
        _best({k: (v[2], v[1]) for k, v in per_episode.items()}, limit), limit, Track
    )
    show_names = dict(
        Album.objects.filter(
            pk__in=[k for k, _, _ in best_shows + best_books if k is not None]
        ).values_list("pk", "name")
    )
    episode_rows = {
        pk: (name, show)
        for pk, name, show in Track.objects.filter(
            pk__in=[k for k, _, _ in best_episodes]
        ).values_list("pk", "name", "album__name")
    }
    short = 0
    if not rule.include_short and _all_time(window) and _totals_usable():
        short = (
            TrackTotal.objects.filter(user=user, kind__in=PODCAST_KINDS).aggregate(
                n=Sum("short_plays")
            )["n"]
            or 0
        )
    elif not rule.include_short:
        short = window_plays(user, window).filter(rule.short_q, kind__in=PODCAST_KINDS).count()
    rule_info = RuleInfo(
        min_ms_played=rule.min_ms_played,
        include_short=rule.include_short,
        short_plays_excluded=short,
        description="Every episode and chapter play counts."
        if rule.include_short
        else f"An episode or chapter play counts from {rule.min_ms_played // 1000} s.",
    )
    return TopPodcasts(
        window=window.info(),
        rule=rule_info,
        as_of=timezone.now(),
        coverage=_coverage_note(user, window),
        plays=sum(v[1] for v in per_episode.values()),
        minutes=_minutes(sum(v[2] for v in per_episode.values())),
        minutes_estimated=any(v[3] for v in per_episode.values()),
        shows=[
            ShowRank(
                rank=rank,
                name=show_names.get(k) or UNKNOWN_SHOW,
                plays=n,
                episodes=by_show[k][2],
                minutes=_minutes(ms),
            )
            for rank, (k, ms, n) in enumerate(best_shows, start=1)
        ],
        episodes=[
            EpisodeRank(
                rank=rank,
                name=episode_rows[k][0],
                show=episode_rows[k][1],
                plays=n,
                minutes=_minutes(ms),
            )
            for rank, (k, ms, n) in enumerate(best_episodes, start=1)
        ],
        audiobooks=[
            BookRank(
                rank=rank,
                name=show_names.get(k) or UNKNOWN_BOOK,
                plays=n,
                chapters=by_book[k][2],
                minutes=_minutes(ms),
            )
            for rank, (k, ms, n) in enumerate(best_books, start=1)
        ],
    )


# --- Entity stats -------------------------------------------------------------------------------


def _best_matches(
    candidates: Iterable[tuple[str, str | None, int, Any]], key: str
) -> list[tuple[str, str | None, int, Any]]:
    """Order name matches: exact, then prefix, then substring; more listens first."""

    def score(item: tuple[str, str | None, int, Any]) -> tuple[int, int, str]:
        name_key = normalize_name(item[0])
        closeness = 0 if name_key == key else 1 if name_key.startswith(key) else 2
        return (closeness, -item[2], name_key)

    return sorted(candidates, key=score)


def entity_stats(
    *,
    user: User,
    window: Window,
    query: str,
    type: EntityType = "artist",
    include_short: bool = False,
    limit: int = 10,
) -> EntityStats:
    """How often the user played an artist or a track found by name (accent- and
    case-insensitive): listens, minutes, first and last listen, listens per year, and for an
    artist its top tracks. Alternatives name the other matches."""
    rule = Rule.default(include_short)
    key = normalize_name(query)
    if not key:
        raise QueryError("query is empty: give an artist or track name.")
    listens = music_listens(user, window, rule)
    source = counted(user, window, rule)
    candidates: list[tuple[str, str | None, int, Any]]
    if type == "artist":
        rows = (
            source.rows.filter(artist__name_key__contains=key)
            .values(artist_key=F("artist_id"), name=F("artist__name"))
            .annotate(n=source.listens)
            .order_by("-n")[:200]
        )
        candidates = [(r["name"], None, r["n"], r["artist_key"]) for r in rows]
    elif type == "track":
        rows = (
            source.rows.filter(track__name_key__contains=key)
            .values(
                artist_key=F("artist_id"),
                name_key=F("track__name_key"),
                artist_name=F("artist__name"),
            )
            .annotate(n=source.listens, name=Min("track__name"))
            .order_by("-n")[:200]
        )
        candidates = [
            (r["name"], r["artist_name"], r["n"], (r["artist_key"], r["name_key"])) for r in rows
        ]
    else:
        raise QueryError("type must be artist or track.")
    ranked = _best_matches(candidates, key)
    limit = _limit(limit)
    alternatives = [EntityMatch(name=n, artist=a, listens=c) for n, a, c, _ in ranked[1:6]]
    envelope = _envelope(user, window, rule)
    empty: dict[str, Any] = {
        "listens": 0,
        "minutes": 0.0,
        "minutes_estimated": False,
        "by_year": [],
        "top_tracks": [],
    }
    if not ranked:
        return EntityStats(
            **envelope, query=query, type=type, found=False, alternatives=[], **empty
        )
    name, artist, count, ident = ranked[0]
    if type == "artist":
        # Through the artist's tracks and the (user, track, played_at) index: no index leads
        # from the plays' artist copy, and all time that would read every play.
        plays = listens.filter(track__primary_artist_id=ident)
    else:
        artist_id, name_key = ident
        plays = listens.filter(track__primary_artist_id=artist_id, track__name_key=name_key)
    row = plays.aggregate(
        listens=Count("*"),
        ms=Sum(PLAYED_MS),
        estimated=Count("played_at", filter=Q(ms_played=None)),
        first=Min("played_at"),
        last=Max("played_at"),
    )
    years = (
        plays.annotate(year=ExtractYear("played_at", tzinfo=window.tz))
        .values("year")
        .annotate(n=Count("*"), ms=Sum(PLAYED_MS))
        .order_by("year")
    )
    return EntityStats(
        **envelope,
        query=query,
        type=type,
        found=True,
        match=EntityMatch(name=name, artist=artist, listens=count),
        alternatives=alternatives,
        listens=row["listens"],
        minutes=_minutes(row["ms"]),
        minutes_estimated=row["estimated"] > 0,
        first_listen=row["first"],
        last_listen=row["last"],
        by_year=[
            YearCount(year=y["year"], listens=y["n"], minutes=_minutes(y["ms"])) for y in years
        ],
        top_tracks=(
            _track_ranks(
                Counted(plays, Count("*"), tracks=_play_tracks(plays, MUSIC)),
                row["listens"],
                limit,
            )
            if type == "artist"
            else []
        ),
    )


# --- Compare periods ----------------------------------------------------------------------------


def _change_pct(a: float, b: float) -> float | None:
    return round(100 * (b - a) / a, 1) if a else None


# Windows at least this long (or open at the start) sum their artists from the artists'
# per-year and per-month totals. Measured on the bench data (a million plays over ten years),
# for windows ending mid-year: 365 days took 44 ms from plays and 76 ms from the totals, 730
# days 82 and 79 ms, five years 184 and 92 ms (the totals' cost is mostly the window's unique
# tracks, heard before and after it).
PERIOD_TOTALS_MIN_DAYS = 730


def period_artists(
    user: User, window: Window, rule: Rule
) -> tuple[Totals, list[tuple[Any, int, int]]]:
    """The window's totals, and every artist as (artist_id, listens, ms) in rank order: for a
    long window in the user's zone, from the artists' years and months and a few days of
    plays; otherwise from `Counted.artists`."""
    long = window.days is None or window.days >= PERIOD_TOTALS_MIN_DAYS
    days = _day_totals(user, window) if long and window.end_date is not None else None
    if days is None:
        return counted(user, window, rule).artists()
    return _artists_from_periods(user, window, rule, days)


def _nearest_start(day: date, unit: str) -> date:
    """The first day of the month (unit "month") or of the year nearest to `day`; the earlier
    on a tie."""
    if unit == "month":
        down = day.replace(day=1)
        up = _next_period(down, "month")
    else:
        down = day.replace(month=1, day=1)
        up = down.replace(year=down.year + 1)
    return down if day - down <= up - day else up


def _period_ranges(start: date | None, end: date) -> list[tuple[int, str, date | None, date]]:
    """The days [start, end) as signed ranges (sign, unit, from, to) of years, months and days
    whose sum it is: all before `end` (years until the year start nearest to end's nearest
    month start, then months to that month start, then days to end; a range that runs
    backwards counts negatively), less all before `start`."""
    ranges: list[tuple[int, str, date | None, date]] = []
    years: dict[int, date | None] = {-1: None}
    for sign, day in [(1, end)] + ([(-1, start)] if start else []):
        month = _nearest_start(day, "month")
        years[sign] = _nearest_start(month, "year")
        ranges += [(sign, "month", years[sign], month), (sign, "day", month, day)]
    ranges.append((1, "year", years[-1], cast(date, years[1])))
    result = []
    for sign, unit, low, high in ranges:
        if low is not None and low > high:
            sign, low, high = -sign, high, low
        if low != high:
            result.append((sign, unit, low, high))
    return result


def _artists_from_periods(
    user: User, window: Window, rule: Rule, days: QuerySet[DayTotal]
) -> tuple[Totals, list[tuple[Any, int, int]]]:
    """`period_artists` from the totals: the artists' sums over `_period_ranges`, and the
    window's own sums from its days (`days`), whose excess over the artists' is the plays of
    tracks without an artist."""
    assert window.end_date is not None
    pieces = []
    for sign, unit, low, high in _period_ranges(
        window.start_date, window.end_date + timedelta(days=1)
    ):
        rows: QuerySet[Any]
        if unit == "day":
            rows = (
                Play.objects.for_user(user)
                .filter(
                    rule.listen_q,
                    kind=MUSIC,
                    artist__isnull=False,
                    played_at__gte=local_midnight(cast(date, low), window.tz),
                    played_at__lt=local_midnight(high, window.tz),
                )
                .values_list("artist_id")
                .annotate(n=Count("*") * sign, ms=Sum(PLAYED_MS) * sign)
                .order_by()
            )
        else:
            model = ArtistMonthTotal if unit == "month" else ArtistYearTotal
            rows = model.objects.filter(user=user, **{f"{unit}__lt": high})
            if low is not None:
                rows = rows.filter(**{f"{unit}__gte": low})
            rows = rows.annotate(
                n=_hour_listens(rule) * sign, ms=_hour_ms(rule) * sign
            ).values_list("artist_id", "n", "ms")
        pieces.append(rows.query.sql_with_params())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.artist_id, s.n, s.ms, a.name_key FROM (SELECT artist_id, "  # noqa: S608 (Django's SQL)
            "SUM(n) AS n, SUM(ms) AS ms FROM "
            f"({' UNION ALL '.join(f'({sql})' for sql, _ in pieces)}) u GROUP BY artist_id) s "
            "JOIN music_artist a ON a.id = s.artist_id WHERE s.n > 0",
            [param for _, params in pieces for param in params],
        )
        found = cursor.fetchall()
    sums = days.aggregate(
        n=Sum(_hour_listens(rule)), ms=Sum(_hour_ms(rule)), unknown=Sum("music_unknown_ms")
    )
    listens, total_ms = int(sums["n"] or 0), int(sums["ms"] or 0)
    ranked = [(k, int(n), int(m)) for k, n, m, _ in found]
    # The plays of tracks without an artist: what the day totals count beyond the artists'.
    unknown_n = listens - sum(n for _, n, _ in ranked)
    if unknown_n:
        ranked.append((None, unknown_n, total_ms - sum(m for _, _, m in ranked)))
    ranked.sort(key=lambda row: (-row[1], -row[2]))
    totals = Totals(
        listens=listens,
        minutes=_minutes(total_ms),
        minutes_estimated=bool(sums["unknown"]),
        unique_tracks=_unique_tracks(user, window, rule),
        unique_artists=len(found),
    )
    names = {k: name_key for k, _, _, name_key in found}
    return totals, _break_ties(ranked, names, normalize_name(UNKNOWN_ARTIST))


def _unique_tracks(user: User, window: Window, rule: Rule) -> int:
    """The music tracks with a listen in the window: those first or last heard inside it, from
    their totals, and those heard both before and after it that have a listen inside, from
    their plays (none for a window at either end of the history)."""
    heard = "play" if rule.include_short else "listen"
    first, last = f"first_{heard}_at", f"last_{heard}_at"
    tracks = TrackTotal.objects.filter(user=user, kind=MUSIC, **{f"{first}__lt": window.end_at})
    if window.start_at is None:
        return tracks.count()
    spanning = Q(**{f"{first}__lt": window.start_at, f"{last}__gte": window.end_at})
    counts = tracks.aggregate(
        inside=Count("pk", filter=Q(**{f"{last}__gte": window.start_at}) & ~spanning),
        around=Count("pk", filter=spanning),
    )
    if not counts["around"]:
        return cast(int, counts["inside"])
    listened = window_plays(user, window).filter(rule.listen_q, track_id=OuterRef("track_id"))
    return cast(int, counts["inside"]) + tracks.filter(spanning, Exists(listened)).count()


def compare_periods(
    *, user: User, a: Window, b: Window, include_short: bool = False, limit: int = 10
) -> ComparePeriods:
    """Two windows side by side: totals and their change, top artists in each, risers and
    fallers by rank, and artists new in B or vanished since A."""
    rule = Rule.default(include_short)
    limit = _limit(limit)
    periods = []
    for window in (a, b):
        periods.append((window, *period_artists(user, window, rule)))
    order_a, order_b = (order for _, _, order in periods)
    rank_a, rank_b = (
        {k: (i, n) for i, (k, n, _) in enumerate(order, start=1)} for order in (order_a, order_b)
    )
    # Artists in both periods, ranked in the top MAX_LIMIT of one of them.
    top = {k for order in (order_a, order_b) for k, _, _ in order[:MAX_LIMIT]}
    moved = [(k, rank_a[k][0] - rank_b[k][0]) for k in top if k in rank_a and k in rank_b]
    risers = sorted((km for km in moved if km[1] > 0), key=lambda km: (-km[1], rank_b[km[0]]))
    fallers = sorted((km for km in moved if km[1] < 0), key=lambda km: (km[1], rank_a[km[0]]))
    new = list(itertools.islice((k for k, _, _ in order_b if k not in rank_a), limit))
    vanished = list(itertools.islice((k for k, _, _ in order_a if k not in rank_b), limit))
    risers, fallers = risers[:limit], fallers[:limit]
    shown = [k for _, _, order in periods for k, _, _ in order[:limit]]
    names = _artist_names([*shown, *(k for k, _ in risers + fallers), *new, *vanished])
    summaries = [
        PeriodSummary(
            window=window.info(),
            totals=totals,
            top_artists=[
                ArtistRank(
                    rank=i,
                    name=names[k][0],
                    listens=n,
                    minutes=_minutes(m),
                    share_pct=_pct(n, totals.listens),
                    spotify_uri=f"spotify:artist:{names[k][1]}" if names[k][1] else None,
                )
                for i, (k, n, m) in enumerate(order[:limit], start=1)
            ],
        )
        for window, totals, order in periods
    ]

    def move(k: Any, change: int) -> RankMove:
        return RankMove(
            name=names[k][0],
            rank_a=rank_a[k][0],
            rank_b=rank_b[k][0],
            rank_change=change,
            listens_a=rank_a[k][1],
            listens_b=rank_b[k][1],
        )

    ta, tb = summaries[0].totals, summaries[1].totals
    # The coverage note spans both windows: from the earlier start to the later end.
    starts = [w.start_date for w in (a, b)]
    span = Window(
        tz=b.tz,
        start_date=None if None in starts else min(d for d in starts if d),
        end_date=None
        if None in (a.end_date, b.end_date)
        else max(d for d in (a.end_date, b.end_date) if d),
        today=b.today,
    )
    span_days = _days(user, span)
    return ComparePeriods(
        a=summaries[0],
        b=summaries[1],
        change=Change(
            listens=tb.listens - ta.listens,
            listens_pct=_change_pct(ta.listens, tb.listens),
            minutes=round(tb.minutes - ta.minutes, 1),
            minutes_pct=_change_pct(ta.minutes, tb.minutes),
            unique_artists=tb.unique_artists - ta.unique_artists,
            unique_tracks=tb.unique_tracks - ta.unique_tracks,
        ),
        risers=[move(k, change) for k, change in risers],
        fallers=[move(k, change) for k, change in fallers],
        new_artists=[ArtistListens(name=names[k][0], listens=rank_b[k][1]) for k in new],
        vanished_artists=[ArtistListens(name=names[k][0], listens=rank_a[k][1]) for k in vanished],
        rule=_rule_info(user, span, rule, span_days),
        as_of=timezone.now(),
        coverage=_coverage_note(user, span, span_days),
    )


# --- Timeline -----------------------------------------------------------------------------------


def _period_start(day: date, granularity: Granularity) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def _next_period(day: date, granularity: Granularity) -> date:
    if granularity == "week":
        return day + timedelta(days=7)
    if granularity == "month":
        return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return day + timedelta(days=1)


def timeline(
    *,
    user: User,
    window: Window,
    granularity: Granularity = "day",
    include_short: bool = False,
) -> Timeline:
    """Listens and minutes per local day, week (Monday first) or month, empty periods
    included."""
    if granularity not in ("day", "week", "month"):
        raise QueryError("granularity must be day, week or month.")
    rule = Rule.default(include_short)
    per_day: list[tuple[date, int, int | None, int]]
    days = None
    # The days' totals, else the hours' summed per local day (same music columns).
    by_day: QuerySet[Any] | None = _day_totals(user, window)
    if by_day is not None:
        by_day = by_day.values_list("day")
    elif (hours := _hours(user, window)) is not None:
        by_day = hours.annotate(day=_local_number(window, DAY_SECONDS, "hour")).values_list("day")
    if by_day is not None:
        sums = by_day.annotate(
            n=Sum(_hour_listens(rule)),
            ms=Sum(_hour_ms(rule)),
            estimated=Sum("music_unknown_ms"),
            short=Sum("music_short"),
        ).order_by("day")
        # A date from the days' totals, a day number from the hours'.
        rows = [(d if isinstance(d, date) else _local_date(d), *rest) for d, *rest in sums]
        per_day = [(day, n, ms, estimated) for day, n, ms, estimated, _ in rows]
        # Such rows exist only with plays, so these are also the envelope's days with data.
        days = {day: short for day, *_, short in rows}
    else:
        per_day = [
            (_local_date(day), n, ms, estimated)
            for day, n, ms, estimated in music_listens(user, window, rule)
            .annotate(day_number=_local_number(window, DAY_SECONDS))
            .values_list("day_number")
            .annotate(
                n=Count("*"),
                ms=Sum(PLAYED_MS),
                estimated=Count("played_at", filter=Q(ms_played=None)),
            )
            .order_by()
        ]
    counts: Counter[date] = Counter()
    ms: defaultdict[date, int] = defaultdict(int)
    estimated = 0
    for day, n, day_ms, day_estimated in per_day:
        period = _period_start(day, granularity)
        counts[period] += n
        ms[period] += day_ms or 0
        estimated += day_estimated
    start, end, _, _ = _span(user, window, counts)
    if window.end_date is None and end is not None:
        end = min(end, window.today)
    periods = []
    if start is not None and end is not None:
        period = _period_start(start, granularity)
        while period <= end:
            periods.append(
                Period(start=period, listens=counts[period], minutes=_minutes(ms[period]))
            )
            period = _next_period(period, granularity)
    return Timeline(
        **_envelope(user, window, rule, days),
        granularity=granularity,
        listens=sum(counts.values()),
        minutes=_minutes(sum(ms.values())),
        minutes_estimated=estimated > 0,
        periods=periods,
    )


# --- Operations ---------------------------------------------------------------------------------


def latest_job_runs(*, user: User, limit: int = 10) -> list[JobRun]:
    """The user's most recent poll, sync, import and resolve runs, newest first."""
    return list(JobRun.objects.filter(user=user).order_by("-started_at", "-pk")[: _limit(limit)])


def artists_played(*, user: User) -> QuerySet[Artist]:
    """Artists the user has listened to (any window), for pickers and autocompletion."""
    return Artist.objects.filter(
        Exists(Play.objects.for_user(user).filter(track__primary_artist_id=OuterRef("pk")))
    )
