"""The one bulk-insert path for plays, shared by polling and imports.

`insert_plays(user=..., records=...)` resolves each record's track, then inserts the plays that are
new and merges the ones already known:

- the same (user, track, played_at) is never stored twice;
- the same play from two sources is one play: a record matches an existing play of the same track
  from another source that ended within DEDUP_TOLERANCE_SECONDS, or, for Account Data rows
  (minute precision), within that minute;
- on a match the better data is kept: the most precise `played_at` (API milliseconds over export
  seconds over Account Data minutes) and the export's `ms_played` and play details;
- a record also matches a play whose `played_at`, cut to the record's precision, equals the
  record's: an export row still finds its play after an API play merged into it and gave it
  milliseconds, so re-importing an export adds nothing.

On PostgreSQL the batch takes the fast path. The records no stored play is near (a first import,
a new poll) have nothing to match: they are COPied straight into history_play. The others are
COPied into a temporary staging table, then one statement matches every row against the stored
plays, one merges the matches and one inserts the rest with conflict handling. Elsewhere
(SQLite) the same rules run in Python.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from copy import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import ip_address
from itertools import compress, islice
from operator import attrgetter, eq, le
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.history.copies import COPIES
from apps.history.models import Play
from apps.music.models import Source
from apps.music.normalize import is_local_uri
from apps.music.services import (
    TrackInfo,
    columns_query,
    name_identities,
    resolve_tracks,
    track_columns,
)

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


# What a merge may change of a stored play: InsertResult.merged_from holds them as they were.
PLAY_STATE = ("track_id", "played_at", "source", *DETAIL_FIELDS)


@dataclass(slots=True)
class InsertResult:
    added: int = 0
    duplicates: int = 0
    merged: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None
    # Each stored play that a record changed, as it was: (id, *PLAY_STATE). A failed import
    # puts back those that were stored before it began.
    merged_from: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)

    def update(self, other: InsertResult) -> None:
        self.added += other.added
        self.duplicates += other.duplicates
        self.merged += other.merged
        self.merged_from += other.merged_from
        for when in (other.earliest, other.latest):
            if when is not None:
                self.earliest = min(self.earliest or when, when)
                self.latest = max(self.latest or when, when)


# The fields of a play from the API besides its track, time and source: all empty, as the API
# gives none of them (the record's defaults).
API_PLAY_DETAILS: dict[str, Any] = {
    f.name: f.default
    for f in dataclasses.fields(PlayRecord)
    if f.name not in ("track", "played_at", "source")
}


def truncate_to_precision(when: datetime, source: str) -> datetime:
    """`when` cut to the precision of a source's times: whole seconds for the extended export,
    whole minutes for Account Data, unchanged for the API."""
    if source == Source.EXPORT_EXTENDED:
        return when.replace(microsecond=0)
    if source == Source.EXPORT_ACCOUNT:
        return when.replace(second=0, microsecond=0)
    return when


def _in_window(when: datetime, anchor: datetime, source: str, tolerance: timedelta) -> bool:
    """Whether `when` falls in the window of a play from `source` that ended at `anchor`."""
    if source == Source.EXPORT_ACCOUNT:
        return anchor <= when < anchor + MINUTE
    return anchor - tolerance <= when <= anchor + tolerance


def is_same_play(
    existing_at: datetime,
    existing_source: str,
    record_at: datetime,
    record_source: str,
    tolerance: timedelta,
) -> bool:
    """The matching rule, for one stored play and one record of the same user and track."""
    if truncate_to_precision(existing_at, record_source) == record_at:
        return True
    return existing_source != record_source and (
        _in_window(existing_at, record_at, record_source, tolerance)
        or _in_window(record_at, existing_at, existing_source, tolerance)
    )


MINUTE = timedelta(seconds=60)


def merge_into(play: Play | PlayRecord | _Stored, record: Play | PlayRecord) -> list[str]:
    """Fold a matching record into an existing play (or one pending in this batch); the fields
    that changed."""
    changed = []
    source = play.source
    if DETAIL[record.source] > DETAIL[source]:
        for name in DETAIL_FIELDS:
            value = getattr(record, name)
            if value not in (None, "") and getattr(play, name) != value:
                setattr(play, name, value)
                changed.append(name)
    if PRECISION[record.source] > PRECISION[source]:
        if play.played_at != record.played_at:
            play.played_at = record.played_at
            changed.append("played_at")
        if DETAIL[record.source] > DETAIL[source]:
            # Time and details are both the record's (an Extended row into an Account Data
            # play), so the play is of its source: matched later, it has the precision of its
            # second, and no longer spans the Account Data minute.
            play.source = record.source
            changed.append("source")
    return changed


def resolve_records(
    records: Sequence[PlayRecord], known_tracks: dict[str, int] | None = None
) -> list[int]:
    """The track id of each record, creating catalogue rows as needed; each distinct item is
    resolved once, and an item whose Spotify URI is in `known_tracks` (uri -> id, filled here)
    is not resolved again."""
    index: dict[tuple[object, ...], int] = {}
    infos: list[TrackInfo] = []
    positions: list[int] = []
    for record in records:
        info = record.track
        key = (info.uri, info.name, info.artist_name, info.album_name, info.kind, info.artists)
        position = index.get(key)
        if position is None:
            position = index[key] = len(infos)
            infos.append(info)
        positions.append(position)
    cache = {} if known_tracks is None else known_tracks
    ids = [cache.get(info.uri) if _by_uri_alone(info) else None for info in infos]  # type: ignore[arg-type]
    todo = [i for i, track_id in enumerate(ids) if track_id is None]
    if todo:
        resolved = resolve_tracks([infos[i] for i in todo], source=records[0].source)
        if len(cache) + len(todo) > KNOWN_TRACKS_MAX:
            cache.clear()
        for i, track_id in zip(todo, resolved, strict=True):
            ids[i] = track_id
            if _by_uri_alone(infos[i]):
                cache[infos[i].uri] = track_id  # type: ignore[index]
    return [ids[p] for p in positions]  # type: ignore[misc]


def time_span(records: Sequence[PlayRecord]) -> tuple[datetime, datetime]:
    """The earliest and latest `played_at` of some records."""
    times = list(map(_played_at, records))
    return min(times), max(times)


_played_at = attrgetter("played_at")


# A job's cache of resolved URIs stays under this many entries (memory stays flat).
KNOWN_TRACKS_MAX = 200_000


def _by_uri_alone(info: TrackInfo) -> bool:
    """Whether the item resolves by its Spotify URI alone: a real URI, and no API credits or
    album id to attach. Such tracks are never deleted (only local ones are merged away), so
    their ids can be kept for a whole import."""
    return (
        info.uri is not None
        and not is_local_uri(info.uri)
        and not info.artists
        and info.album_spotify_id is None
    )


@transaction.atomic
def insert_plays(
    *,
    user: User,
    records: Sequence[PlayRecord],
    known_tracks: dict[str, int] | None = None,
    track_ids: list[int] | None = None,
    copies: dict[int, tuple[Any, ...]] | None = None,
) -> InsertResult:
    """Store a batch of plays for one user; the counts say what was new and what was known.

    `known_tracks` (uri -> track id) carries resolved tracks from one batch to the next of the
    same import, so each item is looked up once per import instead of once per batch.
    `track_ids`, each record's track as `resolve_records` gave it, skips the resolution (an
    import resolves its next batch while this one is written), and `copies`, their copies as
    `track_copies` read them then, the COPY path's read of them."""
    result = InsertResult()
    if not records:
        return result
    if track_ids is None:
        track_ids, copies = resolve_records(records, known_tracks), None
    if connection.vendor == "postgresql":
        # One source per statement: rows of one source never match each other across sources.
        by_source: dict[str, list[int]] = defaultdict(list)
        for i, record in enumerate(records):
            by_source[record.source].append(i)
        for source, positions in by_source.items():
            part, part_ids = (
                (records, track_ids)
                if len(by_source) == 1
                else _pick(records, track_ids, positions)
            )
            result.update(_insert_postgresql(user, source, part, part_ids, copies))
        return result
    return _insert_portable(user, records, track_ids)


@dataclass(slots=True)
class _Stored:
    """A stored play as the portable path matches and merges it: its id and the fields it
    reads (a batch's worth of them stays small, unlike model instances)."""

    pk: int
    track_id: int
    played_at: datetime
    source: str
    ms_played: int | None
    reason_start: str
    reason_end: str
    skipped: bool | None
    shuffle: bool | None
    offline: bool | None
    platform: str
    conn_country: str


class _Near:
    """The plays of one track, sorted by time, for quick lookups of those near a record."""

    __slots__ = ("plays", "times")

    def __init__(self) -> None:
        self.times: list[datetime] = []
        self.plays: list[_Stored | PlayRecord] = []

    def add(self, play: _Stored | PlayRecord) -> None:
        i = bisect_right(self.times, play.played_at)
        self.times.insert(i, play.played_at)
        self.plays.insert(i, play)

    def remove(self, play: _Stored | PlayRecord) -> None:
        i = bisect_left(self.times, play.played_at)
        while self.plays[i] is not play:
            i += 1
        del self.times[i], self.plays[i]

    def between(self, lo: datetime, hi: datetime) -> list[_Stored | PlayRecord]:
        return self.plays[bisect_left(self.times, lo) : bisect_right(self.times, hi)]

    def holds(self, when: datetime, other_than: _Stored | PlayRecord) -> bool:
        return any(p is not other_than for p in self.between(when, when))


def _insert_portable(
    user: User, records: Sequence[PlayRecord], track_ids: list[int]
) -> InsertResult:
    result = InsertResult()
    tolerance = timedelta(seconds=settings.DEDUP_TOLERANCE_SECONDS)
    reach = tolerance + MINUTE
    # Existing plays near the batch, for the exact and cross-source matches. The time span
    # alone selects them (an index range): a list of the batch's track ids costs more to send
    # than the few plays of other tracks it would leave out.
    lo, hi = time_span(records)
    lo, hi = lo - reach, hi + reach
    near_plays = Play.objects.for_user(user).filter(played_at__gte=lo, played_at__lte=hi)
    stored = [
        _Stored(*row)
        for row in near_plays.values_list("pk", "track_id", "played_at", "source", *DETAIL_FIELDS)
    ]
    # The plays of the tracks of one name identity are together: an Account Data row is matched
    # against all of them (see name_identities).
    group: dict[int, object] = {}
    if any(r.source == Source.EXPORT_ACCOUNT for r in records) or any(
        p.source == Source.EXPORT_ACCOUNT for p in stored
    ):
        group = name_identities({*track_ids, *(p.track_id for p in stored)})
    existing: dict[object, _Near] = defaultdict(_Near)
    for known in stored:
        existing[group.get(known.track_id, known.track_id)].add(known)

    to_create: list[tuple[PlayRecord, int]] = []
    pending: dict[int, int] = {}  # id() of a record to create -> its place in to_create
    to_update: dict[int, tuple[_Stored, set[str]]] = {}
    # id() of each play that took a record of this batch -> that record's time: it takes no
    # other but at its own time, or a repeat of that record.
    taken: dict[int, datetime] = {}

    def track_of(play: _Stored | PlayRecord) -> int:
        return play.track_id if isinstance(play, _Stored) else to_create[pending[id(play)]][1]

    for record, track_id in zip(records, track_ids, strict=True):
        near = existing[group.get(track_id, track_id)]
        match = None
        for play in near.between(record.played_at - reach, record.played_at + reach):
            if track_id != track_of(play) and not _one_names_its_track(play, record):
                continue
            if not is_same_play(
                play.played_at, play.source, record.played_at, record.source, tolerance
            ):
                continue
            if truncate_to_precision(play.played_at, record.source) == record.played_at:
                match = play
                break
            if taken.get(id(play), record.played_at) != record.played_at:
                continue
            # Of several plays within the tolerance, the nearest.
            if match is None or abs(play.played_at - record.played_at) < abs(
                match.played_at - record.played_at
            ):
                match = play
        if match is None:
            near.add(record)
            pending[id(record)] = len(to_create)
            to_create.append((record, track_id))
            continue
        result.duplicates += 1
        if not isinstance(match, _Stored):
            # A record of this batch: merge into a copy, never into the caller's record.
            i = pending.pop(id(match))
            near.remove(match)
            match = copy(match)
            near.add(match)
            pending[id(match)] = i
            to_create[i] = (match, to_create[i][1])
        match_track = track_of(match)
        taken.setdefault(id(match), record.played_at)
        old_at, old_source = match.played_at, match.source
        was = _state(match) if isinstance(match, _Stored) else None
        changed = merge_into(match, record)
        # A play that takes the record's source takes its track too (below): an Extended row
        # into an Account Data play of another track of the same name.
        moves = "source" in changed and match_track != track_id
        if ("played_at" in changed or moves) and near.holds(match.played_at, other_than=match):
            # Another play already holds that exact time: keep the old one, and its source.
            match.played_at, match.source = old_at, old_source
            changed = [name for name in changed if name not in ("played_at", "source")]
        elif "played_at" in changed:
            new_at, match.played_at = match.played_at, old_at
            near.remove(match)
            match.played_at = new_at
            near.add(match)
        if "source" in changed and moves:
            if isinstance(match, _Stored):
                match.track_id = track_id
                changed.append("track_id")
            else:
                to_create[pending[id(match)]] = (match, track_id)
        if changed and isinstance(match, _Stored):
            if was is not None and match.pk not in to_update:
                result.merged_from.append(was)
            fields = to_update.setdefault(match.pk, (match, set()))[1]
            fields.update(changed)
            result.merged += 1

    for play, fields in to_update.values():
        Play.objects.filter(pk=play.pk).update(**{name: getattr(play, name) for name in fields})
    if to_create:
        _insert_rows(user, to_create)
        result.added = len(to_create)
        times = [r.played_at for r, _ in to_create]
        result.earliest, result.latest = min(times), max(times)
    return result


# A stored play's id and PLAY_STATE (InsertResult.merged_from).
_state = attrgetter("pk", *PLAY_STATE)


def _one_names_its_track(play: _Stored | PlayRecord, record: PlayRecord) -> bool:
    """Whether exactly one of a play and a record is an Account Data row: such a row names its
    track by artist and name alone, so it matches a play of any track of that name."""
    return (play.source == Source.EXPORT_ACCOUNT) != (record.source == Source.EXPORT_ACCOUNT)


_COLUMNS = (
    f"user_id, track_id, played_at, source, {', '.join(DETAIL_FIELDS)}, ip_addr, user_agent, "
    "export_username, created_at"
)
# A record's DETAIL_FIELDS, in their order.
_details = attrgetter(*DETAIL_FIELDS)


def _insert_rows(user: User, rows: list[tuple[PlayRecord, int]]) -> None:
    """Insert new plays with executemany (no model instances: the ORM's cost per row is
    most of the time on SQLite), with their tracks' copies."""
    ops = connection.ops
    adapt = ops.adapt_datetimefield_value
    # Made naive in the connection's zone here, as the backend would (USE_TZ is on): its own
    # conversion reads a setting on every call (55-58 ms per 20 000 times, 34-38 ms this way).
    zone = connection.timezone

    def when(moment: datetime) -> Any:
        return adapt(moment.astimezone(zone).replace(tzinfo=None))

    now = when(timezone.now())
    # Each track's columns its plays copy (apps.history.copies), read once a batch.
    copies = track_columns({track_id for _, track_id in rows}, *COPIES.values())
    # In the order of SQLite's unique indexes, (user, track, played_at) and (track, user,
    # played_at): for one user, their pages are then written one after the other (a fifth less
    # time on SQLite, measured with the first and the track's own index).
    rows = sorted(rows, key=lambda row: (row[1], row[0].played_at))
    sql = (
        f"INSERT INTO history_play ({_COLUMNS}, {', '.join(COPIES)}) "  # noqa: S608 (constants)
        f"VALUES ({', '.join(['%s'] * 20)})"
    )
    with connection.cursor() as cursor:
        # A part at a time: the parameters of a whole batch would hold it in memory twice.
        for i in range(0, len(rows), _ROWS_PER_WRITE):
            cursor.executemany(
                sql,
                [
                    (
                        user.pk,
                        track_id,
                        when(r.played_at),
                        r.source,
                        *_details(r),
                        ops.adapt_ipaddressfield_value(r.ip_addr),
                        r.user_agent,
                        r.export_username,
                        now,
                        *copies[track_id],
                    )
                    for r, track_id in rows[i : i + _ROWS_PER_WRITE]
                ],
            )


_ROWS_PER_WRITE = 5_000


# --- The PostgreSQL fast path -------------------------------------------------------------------

_STAGE_COLUMNS = (
    ("seq", "int4"),
    ("track_id", "int8"),
    ("played_at", "timestamptz"),
    ("ms_played", "int4"),
    ("reason_start", "text"),
    ("reason_end", "text"),
    ("skipped", "bool"),
    ("shuffle", "bool"),
    ("offline", "bool"),
    ("platform", "text"),
    ("conn_country", "text"),
    ("ip_addr", "inet"),
    ("user_agent", "text"),
    ("export_username", "text"),
)
_CREATE_STAGE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS history_play_stage ("
    + ", ".join(f"{name} {kind}" for name, kind in _STAGE_COLUMNS)
    + ", play_id int8, lost bool NOT NULL DEFAULT false) ON COMMIT DROP"
)


def _record_columns(r: PlayRecord) -> tuple[Any, ...]:
    """A record's values for the staging table's columns after its time (_STAGE_COLUMNS[3:]),
    which both COPYs write."""
    columns = _RECORD_COLUMNS(r)
    if columns[_IP_ADDR] is None:
        return columns
    return (*columns[:_IP_ADDR], ip_address(columns[_IP_ADDR]), *columns[_IP_ADDR + 1 :])


_RECORD_COLUMNS = attrgetter(*DETAIL_FIELDS, "ip_addr", "user_agent", "export_username")
_IP_ADDR = len(DETAIL_FIELDS)


def _sql_rank(rank: dict[str, int], column: str) -> str:
    cases = " ".join(f"WHEN '{source}' THEN {value}" for source, value in rank.items())
    return f"(CASE {column} {cases} END)"


_TRUNC_UNIT: dict[str, str] = {
    Source.API: "microseconds",
    Source.EXPORT_EXTENDED: "second",
    Source.EXPORT_ACCOUNT: "minute",
}

# For each staged row, the stored play it is: the same time at the row's precision, else the
# nearest play of another source whose window overlaps (see is_same_play). A play of the row's
# track, or, when one of the two is an Account Data row, of another track of the same name
# identity (apps.music.services.name_identities); that second branch runs only when %(names)s
# is true (see _match_and_insert). {rows} narrows the rows and {free} the plays, for the
# rematch of the rows _UNSHARE took a play from.
_MATCH = """
UPDATE history_play_stage s SET play_id = (
    SELECT p.id FROM (
        SELECT p.id, p.played_at, p.source FROM history_play p
        WHERE p.user_id = %(user)s AND p.track_id = s.track_id {free}
          AND p.played_at >= s.played_at - %(reach)s AND p.played_at <= s.played_at + %(reach)s
        UNION ALL
        SELECT p.id, p.played_at, p.source
        FROM music_track k
        JOIN music_track o ON o.kind = k.kind AND o.name_key = k.name_key AND o.id <> k.id
            AND CASE WHEN k.kind = 'music' THEN o.primary_artist_id = k.primary_artist_id
                     ELSE o.album_id = k.album_id END
        JOIN history_play p ON p.user_id = %(user)s AND p.track_id = o.id {free}
          AND p.played_at >= s.played_at - %(reach)s AND p.played_at <= s.played_at + %(reach)s
        WHERE %(names)s AND k.id = s.track_id
          AND (p.source = 'export_account') <> (%(source)s = 'export_account')
    ) p
    WHERE date_trunc(%(unit)s, p.played_at) = s.played_at
        OR (p.source <> %(source)s AND (
            {record_window}
            OR CASE WHEN p.source = 'export_account'
                    THEN s.played_at >= p.played_at AND s.played_at < p.played_at + interval '60 s'
                    ELSE s.played_at BETWEEN p.played_at - %(tol)s AND p.played_at + %(tol)s END
        ))
    ORDER BY date_trunc(%(unit)s, p.played_at) = s.played_at DESC,
             abs(extract(epoch FROM p.played_at - s.played_at)), p.id
    LIMIT 1
), lost = false {rows}
"""
_FIRST_MATCH = {"rows": "", "free": ""}
_REMATCH = {
    "rows": "WHERE s.lost",
    "free": "AND p.id NOT IN (SELECT play_id FROM history_play_stage WHERE play_id IS NOT NULL)",
}
# A stored play takes at most one row beyond those at its own time (at their precision): of the
# rows that matched it otherwise, all but the first and its repeats lose it, to match a free
# play or be new.
_UNSHARE = """
UPDATE history_play_stage s SET play_id = NULL, lost = true
FROM history_play p
WHERE p.id = s.play_id AND date_trunc(%(unit)s, p.played_at) <> s.played_at
  AND EXISTS (SELECT 1 FROM history_play_stage o WHERE o.play_id = s.play_id AND o.seq < s.seq
              AND o.played_at <> s.played_at)
"""
_REMATCH_ROUNDS = 3
_RECORD_WINDOW = {
    True: "(p.played_at >= s.played_at AND p.played_at < s.played_at + interval '60 s')",
    False: "(p.played_at BETWEEN s.played_at - %(tol)s AND s.played_at + %(tol)s)",
}

# Fold each matched row into its play, keeping the better data (see merge_into): a more precise
# time unless another play of the track already holds it, and with it the row's source, and
# track, when the row's details are better too.
# Built from constants only.
_MERGE = f"""
WITH m AS (
    SELECT DISTINCT ON (play_id) * FROM history_play_stage
    WHERE play_id IS NOT NULL ORDER BY play_id, seq
), n AS (
    SELECT p.id,
        CASE WHEN t.adopt THEN m.played_at ELSE p.played_at END AS played_at,
        CASE WHEN t.adopt AND w.better THEN %(source)s ELSE p.source END AS source,
        CASE WHEN t.adopt AND w.better THEN m.track_id ELSE p.track_id END AS track_id,
        {{details}},
        {{was}}
    FROM history_play p JOIN m ON p.id = m.play_id
    CROSS JOIN LATERAL (SELECT %(detail)s > {_sql_rank(DETAIL, "p.source")} AS better) w
    CROSS JOIN LATERAL (SELECT %(precision)s > {_sql_rank(PRECISION, "p.source")}
        AND NOT EXISTS (
            SELECT 1 FROM history_play q WHERE q.user_id = p.user_id AND q.id <> p.id
            AND q.track_id = CASE WHEN w.better THEN m.track_id ELSE p.track_id END
            AND q.played_at = m.played_at) AS adopt) t
)
UPDATE history_play p SET played_at = n.played_at, source = n.source, track_id = n.track_id,
    {{assign}}
FROM n WHERE p.id = n.id
  AND (p.played_at, p.source, p.track_id, {{old}})
      IS DISTINCT FROM (n.played_at, n.source, n.track_id, {{new}})
RETURNING n.id, {{returned}}
"""  # noqa: S608
_TEXT_DETAILS = {"reason_start", "reason_end", "platform", "conn_country"}


def _merge_sql() -> str:
    details = ",\n        ".join(
        "CASE WHEN w.better THEN COALESCE("
        + (f"NULLIF(m.{name}, '')" if name in _TEXT_DETAILS else f"m.{name}")
        + f", p.{name}) ELSE p.{name} END AS {name}"
        for name in DETAIL_FIELDS
    )
    return _MERGE.format(
        details=details,
        assign=", ".join(f"{name} = n.{name}" for name in DETAIL_FIELDS),
        old=", ".join(f"p.{name}" for name in DETAIL_FIELDS),
        new=", ".join(f"n.{name}" for name in DETAIL_FIELDS),
        # The play as it was (InsertResult.merged_from).
        was=", ".join(f"p.{name} AS was_{name}" for name in PLAY_STATE),
        returned=", ".join(f"n.was_{name}" for name in PLAY_STATE),
    )


_MERGE_SQL = _merge_sql()

_INSERT = f"""
WITH ins AS (
    INSERT INTO history_play (user_id, track_id, played_at, ms_played, source, reason_start,
        reason_end, skipped, shuffle, offline, platform, conn_country, ip_addr, user_agent,
        export_username, created_at, {", ".join(COPIES)})
    SELECT %(user)s, track_id, played_at, ms_played, %(source)s, reason_start, reason_end,
        skipped, shuffle, offline, platform, conn_country, ip_addr, user_agent,
        export_username, now(), {", ".join(f"k.{c}" for c in COPIES.values())}
    FROM (
        SELECT DISTINCT ON (track_id, played_at) * FROM history_play_stage
        WHERE play_id IS NULL ORDER BY track_id, played_at, seq
    ) s LEFT JOIN music_track k ON k.id = s.track_id  -- a deleted track fails its check, loudly
    ON CONFLICT (user_id, track_id, played_at) DO NOTHING
    RETURNING played_at
)
SELECT count(*), min(played_at), max(played_at) FROM ins
"""  # noqa: S608 (constants only)


def _insert_postgresql(
    user: User,
    source: str,
    records: Sequence[PlayRecord],
    track_ids: list[int],
    copies: dict[int, tuple[Any, ...]] | None,
) -> InsertResult:
    tolerance = timedelta(seconds=settings.DEDUP_TOLERANCE_SECONDS)
    reach = tolerance + MINUTE
    lo, hi = time_span(records)
    with connection.cursor() as cursor:
        # The times of the stored plays in the batch's time span, sorted, if they are fewer than
        # half its records (a first import meets none, or the end of its previous batch); else
        # None, and the whole batch is matched (a re-import, whose records are mostly known).
        cursor.execute(
            "SELECT CASE WHEN count(*) <= %(n)s "
            "THEN coalesce(array_agg(played_at ORDER BY played_at), '{}') END "
            "FROM (SELECT played_at FROM history_play WHERE user_id = %(user)s "
            "AND played_at BETWEEN %(lo)s AND %(hi)s LIMIT %(n)s + 1) s",
            {"user": user.pk, "lo": lo - reach, "hi": hi + reach, "n": len(records) // 2},
        )
        stored = cursor.fetchone()[0]
        if stored is None:
            return _match_and_insert(cursor, user, source, records, track_ids, tolerance)
        if not stored:  # the whole batch is clear
            copied = _copy_new(cursor, user, source, records, track_ids, copies)
            if copied is None:
                return _match_and_insert(cursor, user, source, records, track_ids, tolerance)
            return copied
        # The records no stored play is near have nothing to match: they are copied straight
        # into the table. The others (the same time has the same side) are matched.
        near: list[int] = []
        clear: list[int] = []
        for i, record in enumerate(records):
            j = bisect_left(stored, record.played_at - reach)
            is_near = j < len(stored) and stored[j] <= record.played_at + reach
            (near if is_near else clear).append(i)
        result = InsertResult()
        if clear:
            copied = _copy_new(cursor, user, source, *_pick(records, track_ids, clear), copies)
            if copied is None:  # a play was stored meanwhile: match the whole batch
                return _match_and_insert(cursor, user, source, records, track_ids, tolerance)
            result.update(copied)
        if near:
            part, part_ids = _pick(records, track_ids, near)
            result.update(_match_and_insert(cursor, user, source, part, part_ids, tolerance))
        return result


def _pick(
    records: Sequence[PlayRecord], track_ids: list[int], positions: list[int]
) -> tuple[list[PlayRecord], list[int]]:
    """The records at `positions`, and their tracks."""
    return [records[i] for i in positions], [track_ids[i] for i in positions]


# The columns of history_play a new play is copied into, and their types: those of the staging
# table (but its seq), its user, source and time stored, and its track's copies.
_PLAY_COLUMNS = (
    ("user_id", "int8"),
    *_STAGE_COLUMNS[1:3],
    ("source", "text"),
    *_STAGE_COLUMNS[3:],
    ("created_at", "timestamptz"),
    *((name, {"kind": "text", "duration_ms": "int4"}.get(name, "int8")) for name in COPIES),
)
_COPY_PLAYS = (
    f"COPY history_play ({', '.join(name for name, _ in _PLAY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
)


def _copy_new(
    cursor: Any,
    user: User,
    source: str,
    records: Sequence[PlayRecord],
    track_ids: list[int],
    copies: dict[int, tuple[Any, ...]] | None,
) -> InsertResult | None:
    """COPY a batch that has no stored play near it into history_play: each (track, time) once,
    the first record of it, with its track's copies (`copies`, else read now). None if a play
    of it was stored meanwhile (a poll or another import committed it since the check): the
    batch is then matched."""
    times = list(map(_played_at, records))
    repeats = _repeats(track_ids, times)
    if copies is None:
        copies = track_copies(track_ids)
    now = timezone.now()
    user_id = user.pk
    rows: Iterable[tuple[PlayRecord, int, datetime]] = zip(records, track_ids, times, strict=True)
    if repeats:
        rows = (row for i, row in enumerate(rows) if i not in repeats)
    try:
        # In a savepoint, so that the batch's transaction goes on after a clash; errors become
        # Django's, as cursor.execute makes them: a missing track's (23503) has the batch written
        # again (apps.imports.services).
        with (
            transaction.atomic(),
            connection.wrap_database_errors,
            cursor.copy(_COPY_PLAYS) as copy,
        ):
            copy.set_types([kind for _, kind in _PLAY_COLUMNS])
            write = copy.write_row
            for r, track_id, played_at in rows:
                write(
                    (
                        user_id,
                        track_id,
                        played_at,
                        source,
                        *_record_columns(r),
                        now,
                        # A track deleted meanwhile has none: its check fails the batch.
                        *copies.get(track_id, _NO_COPIES),
                    )
                )
    except IntegrityError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != UNIQUE_VIOLATION:
            raise
        return None
    return InsertResult(
        added=len(records) - len(repeats),
        duplicates=len(repeats),
        earliest=min(times),
        latest=max(times),
    )


def _repeats(track_ids: list[int], times: list[datetime]) -> set[int]:
    """The positions of the records that repeat an earlier one's track and time (a play is
    stored once, from its first record). In time order, as an export lists its plays, a repeat
    can only follow its first within a run of one time: only the records of such runs are
    compared. Hashing every record's time took a sixth of the COPY's Python (`bench imports`)."""
    positions: Iterable[int] = range(len(times))
    if all(map(le, times, islice(times, 1, None))):
        ties = compress(range(1, len(times)), map(eq, islice(times, 1, None), times))
        positions = dict.fromkeys(i for tie in ties for i in (tie - 1, tie))
    seen: set[tuple[int, datetime]] = set()
    repeats: set[int] = set()
    for i in positions:
        key = (track_ids[i], times[i])
        if key in seen:
            repeats.add(i)
        else:
            seen.add(key)
    return repeats


def track_copies(track_ids: Iterable[int]) -> dict[int, tuple[Any, ...]]:
    """Each track's columns its plays copy (apps.history.copies), by id, on PostgreSQL: the ids
    sent as one binary array. A track deleted since has none: its plays' check then fails."""
    return {row[0]: row[1:] for row in columns_query(_READ_COPIES, [set(track_ids)])}


_READ_COPIES = f"SELECT id, {', '.join(COPIES.values())} FROM music_track WHERE id = ANY(%s)"  # noqa: S608 (constants)
UNIQUE_VIOLATION = "23505"
_NO_COPIES = (None,) * len(COPIES)


def _match_and_insert(
    cursor: Any,
    user: User,
    source: str,
    records: Sequence[PlayRecord],
    track_ids: list[int],
    tolerance: timedelta,
) -> InsertResult:
    """Stage the batch, match its rows against the stored plays, merge the matches and insert
    the rest."""
    params: dict[str, Any] = {
        "user": user.pk,
        "source": source,
        "unit": _TRUNC_UNIT[source],
        "tol": tolerance,
        "reach": tolerance + MINUTE,
        "precision": PRECISION[source],
        "detail": DETAIL[source],
    }
    # Whether plays of other tracks of the same name can match (_MATCH's second branch): the
    # batch is Account Data, or Account Data plays are stored in its time span.
    if source == Source.EXPORT_ACCOUNT:
        params["names"] = True
    else:
        lo, hi = time_span(records)
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM history_play WHERE user_id = %s "
            "AND source = 'export_account' AND played_at BETWEEN %s AND %s)",
            [user.pk, lo - params["reach"], hi + params["reach"]],
        )
        params["names"] = cursor.fetchone()[0]
    cursor.execute(_CREATE_STAGE)
    cursor.execute("TRUNCATE history_play_stage")
    columns = ", ".join(name for name, _ in _STAGE_COLUMNS)
    with cursor.copy(f"COPY history_play_stage ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([kind for _, kind in _STAGE_COLUMNS])
        write = copy.write_row
        for seq, (r, track_id) in enumerate(zip(records, track_ids, strict=True)):
            write((seq, track_id, r.played_at, *_record_columns(r)))
    window = _RECORD_WINDOW[source == Source.EXPORT_ACCOUNT]
    cursor.execute(_MATCH.format(record_window=window, **_FIRST_MATCH), params)
    for _ in range(_REMATCH_ROUNDS):
        cursor.execute(_UNSHARE, params)
        if not cursor.rowcount:
            break
        cursor.execute(_MATCH.format(record_window=window, **_REMATCH), params)
    cursor.execute(_MERGE_SQL, params)
    merged_from = cursor.fetchall()
    cursor.execute(_INSERT, params)
    added, earliest, latest = cursor.fetchone()
    return InsertResult(
        added=added,
        duplicates=len(records) - added,
        merged=len(merged_from),
        earliest=earliest,
        latest=latest,
        merged_from=merged_from,
    )
