"""Each play's copies of its track's artist, album, kind and length equal the track's after every
kind of write, on both databases (apps.history.copies)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection

from apps.history import copies, selectors
from apps.history.ingest import PlayRecord, insert_plays
from apps.history.models import Play
from apps.music.models import Album, Source, Track
from apps.music.services import TrackInfo

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def copies_of_plays() -> dict[int, tuple[Any, ...]]:
    rows = Play.objects.values_list("pk", "artist_id", "album_id", "kind", "duration_ms")
    return {pk: tuple(rest) for pk, *rest in rows}


def copies_of_tracks() -> dict[int, tuple[Any, ...]]:
    return {
        pk: tuple(rest)
        for pk, *rest in Play.objects.values_list(
            "pk",
            "track__primary_artist_id",
            "track__album_id",
            "track__kind",
            "track__duration_ms",
        )
    }


def assert_copies_equal() -> None:
    assert copies_of_plays() == copies_of_tracks()


def test_the_triggers_are_installed(db: None) -> None:
    """A rebuilt table (SQLite remakes one for some schema changes) would lose its triggers."""
    names = {"history_play_copies_relink", "history_track_copies"}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        assert names <= {name for (name,) in cursor.fetchall()}
    assert copies.install_sql(connection.vendor)


def test_copies_follow_inserts_relinks_and_edits_of_the_track(
    user: Any, make_track: Any, make_play: Any
) -> None:
    song = make_track("Song", "Artist", "First album", duration_ms=200_000)
    other = make_track("Other", "Someone", "Second album")
    episode = make_track("Ep", "Show", kind=Track.Kind.EPISODE)
    make_play(user, song, T0)
    make_play(user, song, T0 + timedelta(hours=1), ms_played=None, source=Source.API)
    make_play(user, episode, T0 + timedelta(hours=2))
    assert_copies_equal()
    play = Play.objects.get(played_at=T0)
    assert (play.artist_id, play.album_id, play.kind, play.duration_ms) == (
        song.primary_artist_id,
        song.album_id,
        "music",
        200_000,
    )

    # A play moved to another track (a merge of a local track) takes that track's copies.
    Play.objects.filter(pk=play.pk).update(track=other)
    assert_copies_equal()
    assert Play.objects.get(pk=play.pk).artist_id == other.primary_artist_id

    # Edits of the track, through the model and a queryset update.
    song.primary_artist, song.album = other.primary_artist, other.album
    song.save()
    assert_copies_equal()
    Track.objects.filter(pk=song.pk).update(kind=Track.Kind.EPISODE, duration_ms=None)
    assert_copies_equal()
    assert set(Play.objects.filter(track=song).values_list("kind", flat=True)) == {"episode"}
    Album.objects.filter(pk=other.album_id).update(name="Renamed")  # no copy of names
    assert_copies_equal()


def test_the_insert_path_writes_the_copies(user: Any) -> None:
    records = [
        PlayRecord(
            track=TrackInfo(
                name=f"T{i % 4}",
                artist_name=f"A{i % 2}",
                album_name=f"Album {i % 2}",
                uri=f"spotify:track:c{i % 4}",
            ),
            played_at=T0 + timedelta(minutes=7 * i),
            source=Source.EXPORT_EXTENDED,
            ms_played=180_000,
        )
        for i in range(40)
    ]
    assert insert_plays(user=user, records=records).added == 40
    api = PlayRecord(
        track=TrackInfo(name="New", artist_name="A9", uri="spotify:track:new", duration_ms=201_000),
        played_at=T0 + timedelta(days=1),
        source=Source.API,
    )
    assert insert_plays(user=user, records=[api]).added == 1
    assert_copies_equal()
    assert Play.objects.filter(kind=None).count() == 0
    assert Play.objects.get(track__uri="spotify:track:new").duration_ms == 201_000
    # The analysis reads the copies: minutes of the API play are its track's length.
    window = selectors.resolve_window(days=0, tz="UTC", user=user)
    result = selectors.top_tracks(user=user, window=window, limit=50)
    assert result.totals.listens == 41
    assert result.totals.minutes == round((40 * 180_000 + 201_000) / 60_000, 1)
    assert result.totals.minutes_estimated
