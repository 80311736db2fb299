# ruff: noqa: S608  (SQL built from constants and integers only; no input reaches it)
"""Exact pre-aggregates of plays on PostgreSQL: `TrackTotal` (per user and track, all time),
`HourTotal` (per user and UTC hour), `DayTotal` (per user and day of their zone), and
`ArtistMonthTotal` and `ArtistYearTotal` (per user, artist and month or year of their zone).

Measured at a million plays, all-time answers read from raw plays took 0.4 to 2 s; these tables
bring them to tens of milliseconds. They are kept exact by statement-level triggers on
`history_play`, so every write (the insert path's batches and COPY, merges, track re-links,
deletions, the admin) updates them in the same transaction, with no call to forget. On SQLite
(the embedded default, one person's data) the tables stay empty and the analysis reads plays.

The triggers count with the listen threshold they were installed with; `history_totals_min_ms()`
returns it, and the selectors only use the totals while it equals LISTEN_MIN_MS.
`manage.py rebuild_play_totals` reinstalls the triggers with the current threshold and recounts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from apps.history import copies

TRACK_TABLE = "history_tracktotal"
HOUR_TABLE = "history_hourtotal"
DAY_TABLE = "history_daytotal"
MONTH_TABLE = "history_artistmonthtotal"
YEAR_TABLE = "history_artistyeartotal"
TABLES = (TRACK_TABLE, HOUR_TABLE, DAY_TABLE, MONTH_TABLE, YEAR_TABLE)
# Each artist table and its period, also its key column.
ARTIST_TABLES = ((MONTH_TABLE, "month"), (YEAR_TABLE, "year"))
# The sums of music plays both HourTotal and DayTotal keep (see _music_sums).
MUSIC_COLUMNS = (
    "music_plays",
    "music_short",
    "music_unknown_ms",
    "music_ms_long",
    "music_ms_short",
    "music_ms_estimated",
)
DAY_COLUMNS = ("plays", *MUSIC_COLUMNS)
TRACK_COLUMNS = ("plays", "short_plays", "unknown_ms_plays", "ms_long", "ms_short")
# Earliest play and earliest listen of a track, for "discovered in this window"; with the
# latest ones, whether a window holds the track.
FIRSTS = ("first_play_at", "first_listen_at")
LASTS = ("last_play_at", "last_listen_at")
# Any change to a track's plays leaves its best day to be counted again (see refresh_best_days).
STALE = "best_days_stale = true"
# TrackTotal's copies of its track's columns, summed from the plays' own copies (see
# apps.history.copies): an edit of a track updates its plays, and so, through the update
# trigger, its totals.
COPIES = tuple(copies.COPIES)
HOUR_COLUMNS = (
    "plays",
    "podcast_plays",
    "api_plays",
    "extended_plays",
    "account_plays",
    *MUSIC_COLUMNS,
)


def _listen(min_ms: int, play: str = "r") -> str:
    """Whether the play row (alias `play`) is a listen."""
    return f"({play}.ms_played >= {min_ms} OR {play}.ms_played IS NULL)"


def _track_select(rows: str, min_ms: int, sign: int) -> str:
    """Per (user, track) sums of a set of play rows, times sign, and the track's copies (the
    same on each of its plays)."""
    track_copies = ", ".join(f"min(r.{column})" for column in COPIES)
    return f"""
            SELECT r.user_id, r.track_id, {track_copies}, {min_ms},
                {sign} * count(*) AS plays,
                {sign} * count(*) FILTER (WHERE r.ms_played < {min_ms}) AS short_plays,
                {sign} * count(*) FILTER (WHERE r.ms_played IS NULL) AS unknown_ms_plays,
                {sign} * coalesce(sum(r.ms_played) FILTER (WHERE r.ms_played >= {min_ms}), 0)
                    AS ms_long,
                {sign} * coalesce(sum(r.ms_played) FILTER (WHERE r.ms_played < {min_ms}), 0)
                    AS ms_short,
                min(r.played_at) AS first_play_at,
                min(r.played_at) FILTER (WHERE {_listen(min_ms)}) AS first_listen_at,
                max(r.played_at) AS last_play_at,
                max(r.played_at) FILTER (WHERE {_listen(min_ms)}) AS last_listen_at
            FROM {rows} r
            GROUP BY r.user_id, r.track_id"""


def _music_sums(min_ms: int, sign: int, music: str = "r.kind = 'music'") -> str:
    """The MUSIC_COLUMNS sums of a group of play rows r, times sign: of its rows where `music`
    holds."""
    return f"""
            {sign} * count(*) FILTER (WHERE {music}),
            {sign} * count(*) FILTER (WHERE {music} AND r.ms_played < {min_ms}),
            {sign} * count(*) FILTER (WHERE {music} AND r.ms_played IS NULL),
            {sign} * coalesce(sum(r.ms_played)
                FILTER (WHERE {music} AND r.ms_played >= {min_ms}), 0),
            {sign} * coalesce(sum(r.ms_played)
                FILTER (WHERE {music} AND r.ms_played < {min_ms}), 0),
            {sign} * coalesce(sum(coalesce(r.duration_ms, 0))
                FILTER (WHERE {music} AND r.ms_played IS NULL), 0)"""


def _utc_hour(played_at: str) -> str:
    """The UTC hour a time falls in: the same as date_trunc('hour', played_at, 'UTC'), which
    looks the zone up again for each row (0.12 s against 0.04 s for 500 000 plays)."""
    return f"(date_trunc('hour', {played_at} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


def _hour_select(rows: str, min_ms: int, sign: int) -> str:
    """Per (user, UTC hour) sums of a set of play rows, times sign."""
    return f"""
        SELECT r.user_id, {_utc_hour("r.played_at")}, {min_ms},
            {sign} * count(*),
            {sign} * count(*) FILTER (WHERE r.kind <> 'music'),
            {sign} * count(*) FILTER (WHERE r.source = 'api'),
            {sign} * count(*) FILTER (WHERE r.source = 'export_extended'),
            {sign} * count(*) FILTER (WHERE r.source = 'export_account'),{_music_sums(min_ms, sign)}
        FROM {rows} r
        GROUP BY 1, 2"""


def _zones(rows: str) -> str:
    """(user_id, tz): the zone each user of the rows counts days in, looked up once a user.
    MATERIALIZED runs it once a statement: folded into the outer query it would call
    history_zone (a subtransaction) once a row, and as the inner side of a nested loop (the
    plan for a user whose plays the statistics don't know yet, just after their first import)
    it would read the rows again for each row."""
    return (
        "(WITH z AS MATERIALIZED (SELECT d.user_id, history_zone(u.timezone) AS tz "
        f"FROM (SELECT DISTINCT x.user_id FROM {rows} x) d "
        "JOIN accounts_user u ON u.id = d.user_id) SELECT * FROM z)"
    )


def _local_day(played_at: str) -> str:
    return f"({played_at} AT TIME ZONE z.tz)::date"


def _local_period(played_at: str, unit: str) -> str:
    return f"date_trunc('{unit}', {played_at} AT TIME ZONE z.tz)::date"


# Sums of a group of plays, each for the plays of one (user, day, artist, music or not) in
# _zoned's `g`: its MUSIC_COLUMNS, once summed over the music groups.
ZONED_SUMS = ("plays", "short", "unknown_ms", "ms_long", "ms_short", "ms_estimated")


def _zoned(change: Callable[..., str], rows: str, min_ms: int, sign: int) -> str:
    """`change` (`_add` or `_subtract`) applied to DayTotal and both artist tables, in one
    statement: the rows are read, and each put in its user's zone, once, into sums per (user,
    day of their zone, artist, music or not), which each table sums again. Reading them once
    for each table took a third more of the triggers' time."""
    music = ", ".join(f"coalesce(sum(g.{c}) FILTER (WHERE g.music), 0)::int8" for c in ZONED_SUMS)
    artist_sums = ", ".join(f"sum(g.{c})::int8" for c in ZONED_SUMS)
    day = change(
        DAY_TABLE,
        ("user_id", "day"),
        DAY_COLUMNS,
        f"SELECT g.user_id, g.day, {min_ms}, sum(g.plays)::int8, {music} FROM g GROUP BY 1, 2",
    )
    artists = [
        change(
            table,
            ("user_id", "artist_id", unit),
            MUSIC_COLUMNS,
            f"SELECT g.user_id, g.artist_id, date_trunc('{unit}', g.day)::date, {min_ms}, "
            f"{artist_sums} FROM g WHERE g.music AND g.artist_id IS NOT NULL GROUP BY 1, 2, 3",
        )
        for table, unit in ARTIST_TABLES
    ]
    return f"""
        WITH g ({", ".join(("user_id", "day", "artist_id", "music", *ZONED_SUMS))})
        AS MATERIALIZED (
            SELECT r.user_id, {_local_day("r.played_at")}, r.artist_id, r.kind = 'music',
                {_music_sums(min_ms, sign, music="true")}
            FROM {rows} r JOIN {_zones(rows)} z ON z.user_id = r.user_id
            GROUP BY 1, 2, 3, 4
        ), days AS ({day}), months AS ({artists[0]})
        {artists[1]};"""


def _add(
    table: str, keys: tuple[str, ...], columns: tuple[str, ...], select: str, track: bool = False
) -> str:
    """Upsert the sums of `select`; for the track table, also the copies, firsts and lasts."""
    ends = (*FIRSTS, *LASTS) if track else ()
    names = [*keys, *(COPIES if track else ()), "min_ms", *columns, *ends]
    updates = [f"{c} = t.{c} + EXCLUDED.{c}" for c in columns]
    updates += [f"{c} = EXCLUDED.{c}" for c in (COPIES if track else ())]
    updates += [f"{c} = LEAST(t.{c}, EXCLUDED.{c})" for c in (FIRSTS if track else ())]
    updates += [f"{c} = GREATEST(t.{c}, EXCLUDED.{c})" for c in (LASTS if track else ())]
    updates += [STALE] if track else []
    return (
        f"INSERT INTO {table} AS t ({', '.join(names)}) {select} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(updates)}"
    )


def _subtract(
    table: str, keys: tuple[str, ...], columns: tuple[str, ...], select: str, track: bool = False
) -> str:
    # An UPDATE, not an upsert: the rows exist, and a negative insert would fail its checks.
    ends = (*FIRSTS, *LASTS) if track else ()
    names = ", ".join((*keys, *(COPIES if track else ()), "min_ms", *columns, *ends))
    updates = ", ".join([f"{c} = t.{c} + d.{c}" for c in columns] + ([STALE] if track else []))
    match = " AND ".join(f"t.{k} = d.{k}" for k in keys)
    return f"UPDATE {table} t SET {updates} FROM ({select}) AS d({names}) WHERE {match}"


def _apply(rows: str, min_ms: int, sign: int) -> str:
    change = _add if sign > 0 else _subtract
    return (
        change(
            TRACK_TABLE,
            ("user_id", "track_id"),
            TRACK_COLUMNS,
            _track_select(rows, min_ms, sign),
            track=True,
        )
        + ";"
        + change(HOUR_TABLE, ("user_id", "hour"), HOUR_COLUMNS, _hour_select(rows, min_ms, sign))
        + ";"
        + _zoned(change, rows, min_ms, sign)
    )


def _refirst(rows: str, min_ms: int) -> str:
    """After plays left a track (deleted, moved), its first and last play and listen are looked
    up again (index reads on (user, track, played_at))."""
    track = "p.user_id = t.user_id AND p.track_id = t.track_id"
    listen = f"{track} AND {_listen(min_ms, 'p')}"
    return f"""
        UPDATE {TRACK_TABLE} t SET
            first_play_at = (SELECT min(p.played_at) FROM history_play p WHERE {track}),
            first_listen_at = (SELECT p.played_at FROM history_play p WHERE {listen}
                ORDER BY p.played_at LIMIT 1),
            last_play_at = (SELECT max(p.played_at) FROM history_play p WHERE {track}),
            last_listen_at = (SELECT p.played_at FROM history_play p WHERE {listen}
                ORDER BY p.played_at DESC LIMIT 1)
        FROM (SELECT DISTINCT user_id, track_id FROM {rows}) o
        WHERE t.user_id = o.user_id AND t.track_id = o.track_id;"""


def _prune(rows: str) -> str:
    """Drop the rows a deletion emptied."""
    return (
        f"DELETE FROM {TRACK_TABLE} t USING (SELECT DISTINCT user_id, track_id FROM {rows}) o "
        "WHERE t.user_id = o.user_id AND t.track_id = o.track_id AND t.plays = 0;"
        f"DELETE FROM {HOUR_TABLE} t USING (SELECT DISTINCT user_id, "
        f"{_utc_hour('played_at')} AS hour FROM {rows}) o "
        "WHERE t.user_id = o.user_id AND t.hour = o.hour AND t.plays = 0;"
        f"DELETE FROM {DAY_TABLE} t USING (SELECT DISTINCT r.user_id, "
        f"{_local_day('r.played_at')} AS day FROM {rows} r JOIN {_zones(rows)} z "
        "ON z.user_id = r.user_id) o "
        "WHERE t.user_id = o.user_id AND t.day = o.day AND t.plays = 0;"
        + "".join(
            f"DELETE FROM {table} t USING (SELECT DISTINCT r.user_id, r.artist_id, "
            f"{_local_period('r.played_at', unit)} AS {unit} FROM {rows} r JOIN {_zones(rows)} z "
            "ON z.user_id = r.user_id) o WHERE t.user_id = o.user_id AND "
            f"t.artist_id = o.artist_id AND t.{unit} = o.{unit} AND t.music_plays = 0;"
            for table, unit in ARTIST_TABLES
        )
    )


# --- The biggest day of each track ---------------------------------------------------------------
# TrackTotal's best_day_* columns: the most plays (and listens) of a music track on one day of the
# user's time zone, and the latest such day. Counting them on every write would double an
# import's work, so a write only marks the track's row stale (in the upsert it already makes),
# and `refresh_best_days` counts the stale tracks again: after an import or a poll, and before
# the biggest day is read, so what is read is always exact. A change of zone marks all of a
# user's tracks stale.

# The zone a user's days are counted in: their zone, or UTC for a name the server does not know
# (so nothing fails on it; the selectors then read plays for that zone).
ZONE_FUNCTION = """
CREATE OR REPLACE FUNCTION history_zone(name text) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM now() AT TIME ZONE name;
    RETURN name;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN 'UTC';
END $$"""


def _best_recount(pairs: str, min_ms: int) -> str:
    """Count every day of the (user_id, track_id) pairs' tracks again; they are then current."""
    listen = _listen(min_ms, "p")
    return f"""
        UPDATE {TRACK_TABLE} t SET best_days_stale = false,
            (best_day_plays, best_day_plays_on, best_day_listens, best_day_listens_on) = (
                SELECT coalesce(max(c.plays), 0),
                    (array_agg(c.day ORDER BY c.plays DESC, c.day DESC))[1],
                    coalesce(max(c.listens), 0),
                    (array_agg(c.day ORDER BY c.listens DESC, c.day DESC)
                        FILTER (WHERE c.listens > 0))[1]
                FROM (
                    SELECT (p.played_at AT TIME ZONE o.tz)::date AS day, count(*) AS plays,
                        count(*) FILTER (WHERE {listen}) AS listens
                    FROM history_play p WHERE p.user_id = t.user_id AND p.track_id = t.track_id
                    AND o.kind = 'music'
                    GROUP BY 1
                ) c)
        FROM (
            SELECT DISTINCT q.user_id, q.track_id, z.tz, k.kind
            FROM {pairs} q JOIN {_zones(pairs)} z ON z.user_id = q.user_id
            JOIN music_track k ON k.id = q.track_id
        ) o
        WHERE t.user_id = o.user_id AND t.track_id = o.track_id"""


def _zone_changed_sql(min_ms: int) -> list[str]:
    """A user's new zone leaves all their best days to be counted again, and counts their days
    and their artists' months and years again at once."""
    plays = "(SELECT * FROM history_play WHERE user_id = NEW.id)"
    body = (
        f"UPDATE {TRACK_TABLE} SET {STALE} WHERE user_id = NEW.id; "
        + "".join(
            f"DELETE FROM {table} WHERE user_id = NEW.id; "
            for table in (DAY_TABLE, MONTH_TABLE, YEAR_TABLE)
        )
        + _zoned(_add, plays, min_ms, 1)
    )
    return [
        "CREATE OR REPLACE FUNCTION history_user_zone_changed() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$",
        "DROP TRIGGER IF EXISTS history_user_zone_changed ON accounts_user",
        "CREATE TRIGGER history_user_zone_changed AFTER UPDATE OF timezone ON accounts_user "
        "FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone) "
        "EXECUTE FUNCTION history_user_zone_changed()",
    ]


def refresh_best_days(user_id: int) -> int:
    """Count the stale best days of one user's tracks again; the number of tracks counted.

    Rows a write in flight holds are skipped (they stay stale, and `best_days_current` says so):
    this never waits on an import, so it can never deadlock with one."""
    return _refresh_best_days(user_id) if usable() else 0


def _refresh_best_days(user_id: int) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {TRACK_TABLE} WHERE user_id = %s AND best_days_stale "
            "FOR UPDATE SKIP LOCKED",
            [user_id],
        )
        ids = [row[0] for row in cursor.fetchall()]
        if ids:
            pairs = f"(SELECT user_id, track_id FROM {TRACK_TABLE} WHERE id = ANY(%(ids)s))"
            cursor.execute(_best_recount(pairs, settings.LISTEN_MIN_MS), {"ids": ids})
    return len(ids)


def best_days_current(user_id: int, zone: str) -> bool:
    """Whether the user's best days can answer for `zone`: all counted, in that zone. Counts
    the stale ones first (usually none: imports and polls do it)."""
    if not usable():
        return False
    _refresh_best_days(user_id)
    return _counted_in(user_id, zone, best_days=True)


def days_counted_in(user_id: int, zone: str) -> bool:
    """Whether the user's DayTotal rows count the days of `zone`: it is the user's zone, and
    the database knows it."""
    return usable() and _counted_in(user_id, zone)


def _counted_in(user_id: int, zone: str, *, best_days: bool = False) -> bool:
    """Whether the user's days are counted in `zone` (and, with best_days, none is stale)."""
    current = (
        f" AND NOT EXISTS (SELECT 1 FROM {TRACK_TABLE} WHERE user_id = u.id AND best_days_stale)"
        if best_days
        else ""
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT history_zone(u.timezone) = %s{current} FROM accounts_user u WHERE u.id = %s",
            [zone, user_id],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def install_sql(min_ms: int) -> list[str]:
    """The functions and triggers that keep the totals exact, counting with min_ms."""
    functions = {
        "insert": _apply("new_rows", min_ms, 1),
        "delete": _apply("old_rows", min_ms, -1)
        + _prune("old_rows")
        + _refirst("old_rows", min_ms),
        "update": _apply("new_rows", min_ms, 1)
        + _apply("old_rows", min_ms, -1)
        + _prune("old_rows")
        + _refirst("old_rows", min_ms),
    }
    transition = {
        "insert": "REFERENCING NEW TABLE AS new_rows",
        "delete": "REFERENCING OLD TABLE AS old_rows",
        "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    }
    sql = [
        "CREATE OR REPLACE FUNCTION history_totals_min_ms() RETURNS integer "
        f"LANGUAGE sql IMMUTABLE AS $$ SELECT {int(min_ms)} $$",
        ZONE_FUNCTION,
        *_zone_changed_sql(min_ms),
        # Edits of a track reach its totals through its plays' copies now (0011).
        "DROP TRIGGER IF EXISTS history_track_changed ON music_track",
        "DROP FUNCTION IF EXISTS history_track_changed()",
    ]
    for event, body in functions.items():
        sql += [
            f"CREATE OR REPLACE FUNCTION history_play_totals_{event}() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$",
            f"DROP TRIGGER IF EXISTS history_play_totals_{event} ON history_play",
            f"CREATE TRIGGER history_play_totals_{event} AFTER {event.upper()} ON history_play "
            f"{transition[event]} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION history_play_totals_{event}()",
        ]
    return sql


UNINSTALL_SQL = [
    "DROP TRIGGER IF EXISTS history_user_zone_changed ON accounts_user",
    "DROP FUNCTION IF EXISTS history_user_zone_changed()",
    "DROP TRIGGER IF EXISTS history_track_changed ON music_track",
    "DROP FUNCTION IF EXISTS history_track_changed()",
    *(
        f"DROP TRIGGER IF EXISTS history_play_totals_{e} ON history_play"
        for e in ("insert", "delete", "update")
    ),
    *(f"DROP FUNCTION IF EXISTS history_play_totals_{e}()" for e in ("insert", "delete", "update")),
    "DROP FUNCTION IF EXISTS history_totals_min_ms()",
    "DROP FUNCTION IF EXISTS history_zone(text)",
]


def _recount_sql(min_ms: int, user_id: int | None) -> list[str]:
    where = "" if user_id is None else f" WHERE user_id = {int(user_id)}"
    rows = "(SELECT * FROM history_play" + where + ")"
    return [
        *(f"DELETE FROM {table}{where}" for table in TABLES),
        _apply(rows, min_ms, 1),
        _best_recount(f"(SELECT user_id, track_id FROM {TRACK_TABLE}{where})", min_ms) + ";",
    ]


def install(cursor: Any, *, min_ms: int | None = None) -> None:
    """Install the triggers and recount every total (migrations and the rebuild command)."""
    threshold = settings.LISTEN_MIN_MS if min_ms is None else min_ms
    for statement in [*install_sql(threshold), *_recount_sql(threshold, None)]:
        cursor.execute(statement)


def rebuild(*, user_id: int | None = None) -> None:
    """Reinstall the triggers with LISTEN_MIN_MS, put right the plays' copies of their tracks,
    and recount (one user, or everyone)."""
    if connection.vendor != "postgresql":
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE history_play IN SHARE ROW EXCLUSIVE MODE")
        for statement in [*copies.install_sql("postgresql"), copies.REFILL_POSTGRESQL]:
            cursor.execute(statement)
        for statement in install_sql(settings.LISTEN_MIN_MS):
            cursor.execute(statement)
        for statement in _recount_sql(settings.LISTEN_MIN_MS, user_id):
            cursor.execute(statement)


def reinstall_sql() -> list[str]:
    """The functions and triggers again, counting with the threshold of the installed ones, for
    a migration that changes how they count and not what; none without them (removed by hand:
    `rebuild_play_totals` installs them)."""
    min_ms = threshold()
    return [] if min_ms is None else install_sql(min_ms)


def threshold() -> int | None:
    """The listen threshold the installed triggers count with, or None without them."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'history_totals_min_ms'")
        row = cursor.fetchone()
    return int(row[0].split()[-1]) if row else None


def usable() -> bool:
    """Whether the totals can answer: PostgreSQL, triggers counting with LISTEN_MIN_MS."""
    return threshold() == settings.LISTEN_MIN_MS
