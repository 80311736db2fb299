"""Catalogue writes: find or create the artists, albums and tracks that plays point at."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import psycopg
from django.db import connection
from django.utils import timezone

from apps.music.models import Album, Artist, Source, Track
from apps.music.normalize import LOCAL_PREFIX, is_local_uri, local_track_uri
from apps.music.normalize import normalize_name as _normalize_name

# Names repeat a lot in a batch (artists, albums): normalise each once.
normalize_name = lru_cache(maxsize=65_536)(_normalize_name)

# (kind, owner key, name key): see TrackInfo.key.
NameKey = tuple[str, str, str]


@dataclass(slots=True)
class TrackInfo:
    """What a play record knows about its item. Exports bring names only; the API brings ids."""

    name: str
    artist_name: str | None = None  # the primary artist: first API artist, or album artist
    album_name: str | None = None  # for episodes the show, for chapters the audiobook
    uri: str | None = None  # spotify:track:… etc.; None gives a local:<sha1> id
    kind: str = Track.Kind.MUSIC
    duration_ms: int | None = None
    album_spotify_id: str | None = None
    # The full ordered credit list from the API: (name, spotify id). Empty for exports.
    artists: tuple[tuple[str, str | None], ...] = field(default_factory=tuple)

    @property
    def key(self) -> NameKey:
        """Name identity: the kind, the normalised owner and the normalised name. A song's owner
        is its primary artist; an episode's is its show and a chapter's its audiobook (the
        album), since they have no artist."""
        owner = self.artist_name if self.kind == Track.Kind.MUSIC else self.album_name
        return (self.kind, normalize_name(owner), normalize_name(self.name))

    @property
    def resolved_uri(self) -> str:
        return self.uri or local_track_uri(self.artist_name, self.name, self.album_name)


def _artists(names_and_ids: Iterable[tuple[str, str | None]]) -> dict[str, int]:
    """Artist ids by name key, created where missing; Spotify ids attached when first known."""
    wanted: dict[str, tuple[str, str | None]] = {}
    for name, spotify_id in names_and_ids:
        key = normalize_name(name)
        if key and (key not in wanted or (spotify_id and not wanted[key][1])):
            wanted[key] = (name, spotify_id)
    if not wanted:
        return {}

    def fetch() -> dict[str, tuple[int, str | None]]:
        rows = Artist.objects.filter(name_key__in=wanted)
        return {key: (pk, sid) for key, pk, sid in rows.values_list("name_key", "pk", "spotify_id")}

    found = fetch()
    missing = [
        Artist(name=name[:512], name_key=key)
        for key, (name, _) in wanted.items()
        if key not in found
    ]
    if missing:
        Artist.objects.bulk_create(missing, ignore_conflicts=True)
        found = fetch()
    for key, (_, spotify_id) in wanted.items():
        pk, known_id = found[key]
        if spotify_id and known_id is None:
            Artist.objects.filter(pk=pk, spotify_id__isnull=True).exclude(
                pk__in=Artist.objects.filter(spotify_id=spotify_id).values("pk")
            ).update(spotify_id=spotify_id)
    return {key: pk for key, (pk, _) in found.items()}


# An album: (primary artist id, name key).
AlbumKey = tuple[int | None, str]


def _albums(infos: Sequence[TrackInfo], artists: dict[str, int]) -> dict[AlbumKey, int]:
    """Album ids by (artist id, name key), created where missing; Spotify ids attached when
    first known."""
    wanted: dict[AlbumKey, TrackInfo] = {}
    for info in infos:
        key = normalize_name(info.album_name)
        if key:
            wanted.setdefault((artists.get(normalize_name(info.artist_name)), key), info)
    if not wanted:
        return {}

    def fetch(keys: Iterable[AlbumKey]) -> dict[AlbumKey, tuple[int, str | None]]:
        keys = set(keys)
        if connection.vendor == "postgresql":
            return _fetch_albums_postgresql(keys)
        return _fetch_albums_portable(keys)

    found = fetch(wanted)
    missing = [
        ((info.album_name or "")[:512], key, artist_id)
        for (artist_id, key), info in wanted.items()
        if (artist_id, key) not in found
    ]
    if missing:
        if connection.vendor == "postgresql":
            # The new rows come back; only those another writer added first are fetched.
            rows = columns_query(_INSERT_ALBUMS, list(zip(*missing, strict=True)))
            found.update(((a, k), (pk, None)) for pk, a, k in rows)
        else:
            Album.objects.bulk_create(
                [Album(name=n, name_key=k, artist_id=a) for n, k, a in missing],
                ignore_conflicts=True,
            )
        if len(found) < len(wanted):
            found.update(fetch(album for album in wanted if album not in found))
    for album, info in wanted.items():
        pk, known_id = found[album]
        if info.album_spotify_id and known_id is None:
            Album.objects.filter(pk=pk, spotify_id__isnull=True).exclude(
                pk__in=Album.objects.filter(spotify_id=info.album_spotify_id).values("pk")
            ).update(spotify_id=info.album_spotify_id)
    return {key: pk for key, (pk, _) in found.items()}


_INSERT_ALBUMS = """
INSERT INTO music_album (name, name_key, artist_id, created_at)
SELECT u.*, now() FROM unnest(%s::varchar[], %s::varchar[], %s::bigint[]) AS u
ON CONFLICT DO NOTHING
RETURNING id, artist_id, name_key
"""
_FETCH_ALBUMS = """
SELECT a.id, a.artist_id, a.name_key, a.spotify_id FROM music_album a
JOIN unnest(%s::bigint[], %s::varchar[]) AS w(artist_id, name_key)
    ON a.artist_id = w.artist_id AND a.name_key = w.name_key
WHERE a.artist_id IS NOT NULL
UNION ALL
SELECT a.id, a.artist_id, a.name_key, a.spotify_id FROM music_album a
WHERE a.artist_id IS NULL AND a.name_key = ANY(%s::varchar[])
"""


def _fetch_albums_postgresql(keys: set[AlbumKey]) -> dict[AlbumKey, tuple[int, str | None]]:
    with_artist = [(a, k) for a, k in keys if a is not None]
    without = [k for a, k in keys if a is None]
    rows = columns_query(
        _FETCH_ALBUMS, [[a for a, _ in with_artist], [k for _, k in with_artist], without]
    )
    return {(artist_id, key): (pk, sid) for pk, artist_id, key, sid in rows}


# Wanted albums per query: two parameters each, under SQLite's limit of 999 in older builds.
_ALBUMS_PER_QUERY = 450


def _fetch_albums_portable(keys: set[AlbumKey]) -> dict[AlbumKey, tuple[int, str | None]]:
    """The albums among `keys`: each (artist, name) pair looked up in the unique index, joined
    from a VALUES list (a filter with an IN list on each column would have SQLite probe every
    pair of the two lists), and the albums without an artist by name."""
    pairs = [(artist_id, key) for artist_id, key in keys if artist_id is not None]
    found: dict[AlbumKey, tuple[int, str | None]] = {}
    with connection.cursor() as cursor:
        for i in range(0, len(pairs), _ALBUMS_PER_QUERY):
            chunk = pairs[i : i + _ALBUMS_PER_QUERY]
            cursor.execute(
                "SELECT a.artist_id, a.name_key, a.id, a.spotify_id FROM music_album a "  # noqa: S608 (placeholders only)
                f"JOIN (VALUES {', '.join(['(%s, %s)'] * len(chunk))}) AS w "
                "ON a.artist_id = w.column1 AND a.name_key = w.column2 "
                "WHERE a.artist_id IS NOT NULL",
                [value for pair in chunk for value in pair],
            )
            found.update(((a, k), (pk, sid)) for a, k, pk, sid in cursor.fetchall())
    without = [key for artist_id, key in keys if artist_id is None]
    if without:
        rows = Album.objects.filter(artist=None, name_key__in=without).values_list(
            "name_key", "pk", "spotify_id"
        )
        found.update(((None, k), (pk, sid)) for k, pk, sid in rows)
    return found


def resolve_tracks(infos: Sequence[TrackInfo], *, source: str = Source.API) -> list[int]:
    """The track id of each info, in order, creating catalogue rows as needed.

    A record without a URI resolves by name to a known track of the same normalised artist and
    name, preferring a real Spotify track; only when none is known does it get a local id.
    Items already in the catalogue cost one lookup; only new items, and API items that bring
    Spotify ids to attach, go through the artist and album upsert.
    """
    uris = [info.resolved_uri for info in infos]
    known = _ids_by_uri(set(uris))
    rest = [
        info
        for info, uri in zip(infos, uris, strict=True)
        if uri not in known or info.artists or info.album_spotify_id
    ]
    by_name = _upsert_tracks(rest, source=source, known=known) if rest else {}
    return [
        by_name[info.key] if by_name and info.uri is None and info.key in by_name else known[uri]
        for info, uri in zip(infos, uris, strict=True)
    ]


_CHUNK = 5_000


def columns_query(sql: str, columns: Iterable[Iterable[Any]]) -> list[Any]:
    """Run one of the PostgreSQL statements that take whole columns as arrays (unnest, ANY),
    and return its rows. The arrays go to the server as binary parameters: Django's cursor
    binds on the client, quoting each element into the SQL text in Python, which cost more
    than the statements themselves on large batches."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql.replace("%s", "%b"), [list(column) for column in columns])
        return cursor.fetchall() if cursor.description else []


def _ids_by_uri(uris: set[str]) -> dict[str, int]:
    if not uris:
        return {}
    if connection.vendor == "postgresql":
        return dict(columns_query("SELECT uri, id FROM music_track WHERE uri = ANY(%s)", [uris]))
    found: dict[str, int] = {}
    ordered = sorted(uris)
    for i in range(0, len(ordered), _CHUNK):
        found.update(Track.objects.filter(uri__in=ordered[i : i + _CHUNK]).values_list("uri", "id"))
    return found


def _upsert_tracks(
    infos: Sequence[TrackInfo], *, source: str, known: dict[str, int]
) -> dict[NameKey, int]:
    """Create what `infos` need (artists, albums, tracks, credits); fill `known` (uri -> id) and
    return the by-name resolution of infos without a URI."""
    artists = _artists(
        [credit for info in infos for credit in info.artists]
        + [(info.artist_name, None) for info in infos if info.artist_name]
    )
    albums = _albums(infos, artists)

    nameless = {info.key for info in infos if info.uri is None}
    by_name = _known_by_name(nameless, artists, albums) if nameless else {}

    # uri -> (kind, name, name_key, album id, primary artist id, duration)
    new: dict[str, tuple[str, str, str, int | None, int | None, int | None]] = {}
    for info in infos:
        uri = info.resolved_uri
        if uri in known or uri in new or (info.uri is None and info.key in by_name):
            continue
        artist = artists.get(normalize_name(info.artist_name))
        new[uri] = (
            info.kind,
            (info.name or "")[:512],
            normalize_name(info.name),
            albums.get((artist, normalize_name(info.album_name))),
            artist,
            info.duration_ms,
        )
    if new:
        known.update(_insert_tracks(new, source=source))
        real = [
            (known[uri], kind, owner, name_key)
            for uri, (kind, _, name_key, album, artist, _) in new.items()
            if not is_local_uri(uri)
            and (owner := artist if kind == Track.Kind.MUSIC else album) is not None
        ]
        if real:
            merged = merge_local_tracks(real)
            if merged:
                # Items of this batch that resolved to a local track just merged.
                for mapping in (known, by_name):
                    for key, track_id in mapping.items():
                        mapping[key] = merged.get(track_id, track_id)  # type: ignore[index]
    # The API's credit list of each track, new or known: an export names only the album's
    # artist, which the track keeps as its primary artist, not as a credit. A credit already
    # held is kept.
    credits = [
        (credited, artists[key], position)
        for info in infos
        if info.artists and (credited := known.get(info.resolved_uri)) is not None
        for position, key in enumerate(
            dict.fromkeys(normalize_name(name) for name, _ in info.artists)
        )
        if key in artists
    ]
    _insert_credits(credits)
    return by_name


def _owner_field(kind: str) -> str:
    """The track column that holds the owner of a name identity of this kind (TrackInfo.key)."""
    return "primary_artist_id" if kind == Track.Kind.MUSIC else "album_id"


# Track ids per query of track_columns, under SQLite's limit on parameters.
_IDS_PER_QUERY = 900


def track_columns(track_ids: Iterable[int], *columns: str) -> dict[int, tuple[Any, ...]]:
    """Each track's `columns`, by id: a few hundred ids a query."""
    found: dict[int, tuple[Any, ...]] = {}
    ordered = sorted(track_ids)
    for i in range(0, len(ordered), _IDS_PER_QUERY):
        rows = Track.objects.filter(pk__in=ordered[i : i + _IDS_PER_QUERY]).values_list(
            "pk", *columns
        )
        found.update((pk, tuple(rest)) for pk, *rest in rows)
    return found


def name_identities(track_ids: set[int]) -> dict[int, object]:
    """Each track's name identity, as Account Data rows name a track (TrackInfo.key, by owner
    id): its kind, owner (the artist of a song, the show of an episode) and normalised name.
    Tracks of one identity are versions of one song (a single and its album, say); a track
    with no owner is its own."""
    found: dict[int, object] = {}
    columns = track_columns(track_ids, "kind", "primary_artist_id", "album_id", "name_key")
    for pk, (kind, artist, album, name_key) in columns.items():
        owner = artist if kind == Track.Kind.MUSIC else album  # as _owner_field
        found[pk] = pk if owner is None else (kind, owner, name_key)
    return found


def _known_by_name(
    keys: set[NameKey], artists: dict[str, int], albums: dict[AlbumKey, int]
) -> dict[NameKey, int]:
    """The known track of each name identity, a real Spotify track before a local one."""
    owners: dict[str, dict[int, str]] = {}  # kind -> {owner id: owner key}
    for kind, owner, _ in keys:
        owner_id = artists.get(owner) if kind == Track.Kind.MUSIC else albums.get((None, owner))
        if owner_id is not None:
            owners.setdefault(kind, {})[owner_id] = owner
    rows: list[tuple[int, str, str, int, str]] = []
    for kind, ids in owners.items():
        field = _owner_field(kind)
        rows += Track.objects.filter(
            kind=kind, **{f"{field}__in": ids}, name_key__in={n for k, _, n in keys if k == kind}
        ).values_list("id", "uri", "kind", field, "name_key")
    found: dict[NameKey, int] = {}
    for track_id, _uri, kind, owner_id, name_key in sorted(
        rows, key=lambda row: (is_local_uri(row[1]), row[0])
    ):
        key = (kind, owners[kind][owner_id], name_key)
        if key in keys:
            found.setdefault(key, track_id)
    return found


# On PostgreSQL new tracks and credits go in as arrays through unnest(): one statement per
# batch instead of an ORM object per row.
_INSERT_TRACKS = """
INSERT INTO music_track (uri, kind, name, name_key, album_id, primary_artist_id, duration_ms,
    first_source, created_at)
SELECT u.*, now() FROM unnest(%s::varchar[], %s::varchar[], %s::varchar[], %s::varchar[],
    %s::bigint[], %s::bigint[], %s::integer[], %s::varchar[]) AS u
ON CONFLICT (uri) DO NOTHING
RETURNING uri, id
"""
_INSERT_CREDITS = """
INSERT INTO music_trackartist (track_id, artist_id, position)
SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::smallint[])
ON CONFLICT DO NOTHING
"""


def _insert_tracks(
    rows: dict[str, tuple[str, str, str, int | None, int | None, int | None]], *, source: str
) -> dict[str, int]:
    """Insert the tracks (by uri) not in the catalogue yet; the id of each, new or not."""
    if connection.vendor != "postgresql":
        # One executemany, without a model instance per row (most of the cost of bulk_create).
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            cursor.executemany(
                _INSERT_TRACK_ROW,
                [(uri, *row, source, now) for uri, row in rows.items()],
            )
        return _ids_by_uri(set(rows))
    columns = [list(rows), *zip(*rows.values(), strict=True), [source] * len(rows)]
    ids: dict[str, int] = dict(columns_query(_INSERT_TRACKS, columns))
    if len(ids) < len(rows):  # tracks another writer added first are not returned
        ids |= _ids_by_uri(set(rows) - ids.keys())
    return ids


_INSERT_TRACK_ROW = """
INSERT INTO music_track (uri, kind, name, name_key, album_id, primary_artist_id, duration_ms,
    first_source, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (uri) DO NOTHING
"""
_INSERT_CREDIT_ROW = """
INSERT INTO music_trackartist (track_id, artist_id, position) VALUES (%s, %s, %s)
ON CONFLICT DO NOTHING
"""


def _insert_credits(credits: list[tuple[int, int, int]]) -> None:
    if not credits:
        return
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.executemany(_INSERT_CREDIT_ROW, credits)
        return
    columns_query(_INSERT_CREDITS, list(zip(*credits, strict=True)))


def merge_local_tracks(real_tracks: Sequence[tuple[int, str, int, str]]) -> dict[int, int]:
    """Fold `local:` tracks into real ones of the same name identity (TrackInfo.key).

    `real_tracks` holds (track id, kind, owner id, name key) of real Spotify tracks, the owner
    being the primary artist of a song and the album (show, audiobook) of an episode or a
    chapter. Each local track of the same kind, owner and name key has its plays moved to the
    real track: a play that is the same play as one already on the real track (see
    `is_same_play`) is merged into it by the insert path's rule, and removed. The local track
    is then deleted. Returns {local track id: real track id}.
    """
    from datetime import timedelta

    from django.conf import settings

    from apps.history.ingest import is_same_play, merge_into, truncate_to_precision
    from apps.history.models import Play

    wanted = {(kind, owner, name): track_id for track_id, kind, owner, name in real_tracks}
    if not Track.objects.filter(uri__startswith=LOCAL_PREFIX).exists():
        return {}
    locals_ = []
    for kind in {kind for kind, _, _ in wanted}:
        field = _owner_field(kind)
        locals_ += [
            (local_id, wanted[(kind, owner, name_key)])
            for local_id, owner, name_key in Track.objects.filter(
                uri__startswith=LOCAL_PREFIX,
                kind=kind,
                **{f"{field}__in": {o for k, o, _ in wanted if k == kind}},
                name_key__in={n for k, _, n in wanted if k == kind},
            ).values_list("id", field, "name_key")
            if (kind, owner, name_key) in wanted
        ]
    if not locals_:
        return {}
    # Each local track is locked before its plays move. A writer whose batch refers to one
    # (FOR KEY SHARE, apps.history.references) then either commits first, and its plays move
    # too, or waits, and finds it gone (its batch is written again). Moving the plays first and
    # waiting on it only to delete it could deadlock with that writer over the totals rows both
    # change.
    still = set(
        Track.objects.select_for_update()
        .filter(pk__in=[local_id for local_id, _ in locals_])
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    locals_ = [(local_id, real_id) for local_id, real_id in locals_ if local_id in still]
    tolerance = timedelta(seconds=settings.DEDUP_TOLERANCE_SECONDS)
    for local_id, real_id in locals_:
        on_real: dict[int, list[Play]] = {}
        for play in Play.objects.filter(track_id=real_id):
            on_real.setdefault(play.user_id, []).append(play)
        moved: list[int] = []
        for play in Play.objects.filter(track_id=local_id).order_by("pk"):
            candidates = [
                real
                for real in on_real.get(play.user_id, [])
                if is_same_play(real.played_at, real.source, play.played_at, play.source, tolerance)
                or is_same_play(play.played_at, play.source, real.played_at, real.source, tolerance)
            ]
            # As in the insert path: the play at its own time (at its precision), else the
            # nearest.
            match = min(
                candidates,
                key=lambda real: (
                    truncate_to_precision(real.played_at, play.source) != play.played_at,
                    abs(real.played_at - play.played_at),
                    real.pk,
                ),
                default=None,
            )
            if match is None:
                moved.append(play.pk)
                on_real.setdefault(play.user_id, []).append(play)
                continue
            changed = merge_into(match, play)  # the insert path's rule, on `match` itself
            play.delete()
            if changed:
                Play.objects.filter(pk=match.pk).update(**{n: getattr(match, n) for n in changed})
        Play.objects.filter(pk__in=moved).update(track_id=real_id)
        Track.objects.filter(pk=local_id).delete()
    return dict(locals_)
