"""On PostgreSQL the references of plays and of the catalogue are checked by triggers
(apps.history.references): no row refers to a missing row, and no row is deleted under the rows
that refer to it. (SQLite keeps Django's foreign keys.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import IntegrityError, OperationalError, connection, transaction

from apps.accounts.models import User
from apps.history.ingest import PlayRecord, insert_plays
from apps.history.models import Play
from apps.music.models import Album, Artist, Source, Track, TrackArtist
from apps.music.services import TrackInfo
from tests.conftest import in_flight

pytestmark = pytest.mark.usefixtures("postgres")

WHEN = datetime(2025, 3, 14, 18, 23, 41, tzinfo=UTC)
MISSING = 987_654


def _insert(user_id: int, track_ids: list[int]) -> None:
    """One INSERT statement of a play per track, with their tracks' copies, as the bulk paths
    write them."""
    rows = ", ".join(["(%s, %s, %s)"] * len(track_ids))
    params: list[Any] = []
    for i, track_id in enumerate(track_ids):
        params += [user_id, track_id, WHEN.replace(minute=i)]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO history_play (user_id, track_id, played_at, source, reason_start, "  # noqa: S608
            "reason_end, platform, conn_country, user_agent, export_username, created_at, "
            "artist_id, album_id, kind, duration_ms) "
            "SELECT v.column1, v.column2, v.column3, 'export_extended', '', '', '', '', '', '', "
            "v.column3, k.primary_artist_id, k.album_id, k.kind, k.duration_ms "
            f"FROM (VALUES {rows}) v LEFT JOIN music_track k ON k.id = v.column2",
            params,
        )


def test_a_statement_with_one_play_of_a_missing_track_stores_none(user, make_track):
    songs = [make_track(f"Song {i}").pk for i in range(3)]
    with pytest.raises(IntegrityError, match="music_track"), transaction.atomic():
        _insert(user.pk, [*songs, MISSING])
    assert Play.objects.count() == 0
    _insert(user.pk, songs)
    assert sorted(Play.objects.values_list("track_id", flat=True)) == sorted(songs)


def test_a_play_of_a_missing_user_is_refused(make_track):
    song = make_track().pk
    with pytest.raises(IntegrityError, match="accounts_user"), transaction.atomic():
        _insert(MISSING, [song])
    assert Play.objects.count() == 0


def test_a_play_moved_to_a_missing_track_is_refused_and_a_real_move_is_not(
    user, make_track, make_play
):
    song, other = make_track("Song"), make_track("Other")
    play = make_play(user, song, WHEN)
    with pytest.raises(IntegrityError), transaction.atomic():
        Play.objects.filter(pk=play.pk).update(track_id=MISSING)
    Play.objects.filter(pk=play.pk).update(track_id=other.pk, ms_played=1000)
    play.refresh_from_db()
    assert (play.track_id, play.ms_played, play.artist_id) == (
        other.pk,
        1000,
        other.primary_artist_id,
    )


def test_a_track_or_user_with_plays_is_not_deleted_under_them(user, make_track, make_play):
    song = make_track()
    make_play(user, song, WHEN)
    for table, pk in (("music_track", song.pk), ("accounts_user", user.pk)):
        refused = pytest.raises(IntegrityError, match=f'delete on table "{table}"')
        with refused, transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])  # noqa: S608
    assert Track.objects.filter(pk=song.pk).exists()
    assert User.objects.filter(pk=user.pk).exists()
    user.delete()  # the ORM deletes the user's plays first
    assert Play.objects.count() == 0
    song.delete()  # no play refers to it any more
    assert not Track.objects.exists()


def test_a_batch_through_the_insert_path_refers_to_its_rows(user):
    result = insert_plays(
        user=user,
        records=[
            PlayRecord(TrackInfo(f"Song {i}", "Artist", uri=f"spotify:track:{i}"), WHEN, s)
            for i, s in enumerate([Source.EXPORT_EXTENDED, Source.API])
        ],
    )
    assert result.added == 2
    assert set(Play.objects.values_list("track__uri", "user__username")) == {
        ("spotify:track:0", "alice"),
        ("spotify:track:1", "alice"),
    }


@pytest.mark.django_db(transaction=True)
def test_a_track_a_writer_refers_to_waits_for_its_commit_to_be_deleted(
    user: Any, make_track: Any
) -> None:
    """The insert's check locks the tracks it refers to, as a foreign key's does: a delete of
    one waits for the writer, then finds its plays and is refused."""
    song = make_track()
    _delete_waits_then_is_refused("music_track", song.pk, lambda: _insert(user.pk, [song.pk]))
    assert list(Play.objects.values_list("track_id", flat=True)) == [song.pk]


def _delete_waits_then_is_refused(table: str, pk: int, write: Any) -> None:
    """While `write`, which refers to the row, is in flight on another connection, a delete of
    the row waits for its lock; once it has committed, the delete is refused."""
    with in_flight(write), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '300ms'")
        with pytest.raises(OperationalError, match="lock timeout"):
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])  # noqa: S608
    with pytest.raises(IntegrityError), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])  # noqa: S608


def test_catalogue_rows_that_refer_to_a_missing_row_are_refused(make_track):
    song = make_track("Song", "Artist", "Album")
    artist, album = song.primary_artist, song.album
    attempts = {
        ("music_track", "music_album", "album_id"): lambda: Track.objects.create(
            uri="spotify:track:x", name="X", name_key="x", album_id=MISSING
        ),
        ("music_track", "music_artist", "primary_artist_id"): lambda: Track.objects.create(
            uri="spotify:track:y", name="Y", name_key="y", primary_artist_id=MISSING
        ),
        ("music_album", "music_artist", "artist_id"): lambda: Album.objects.create(
            name="B", name_key="b", artist_id=MISSING
        ),
        ("music_trackartist", "music_track", "track_id"): lambda: TrackArtist.objects.create(
            track_id=MISSING, artist=artist, position=1
        ),
        ("music_trackartist", "music_artist", "artist_id"): lambda: TrackArtist.objects.create(
            track=song, artist_id=MISSING, position=1
        ),
        ("music_track", "music_album", "album_id", "update"): lambda: Track.objects.filter(
            pk=song.pk
        ).update(album_id=MISSING),
    }
    for (table, target, column, *_), attempt in attempts.items():
        message = f'"{table}" refers to a missing row of "{target}" ({column})'
        with pytest.raises(IntegrityError, match=re.escape(message)), transaction.atomic():
            attempt()
    assert (Track.objects.count(), Album.objects.count(), TrackArtist.objects.count()) == (1, 1, 1)
    song.refresh_from_db()
    assert song.album_id == album.pk
    # Real references, and none, pass.
    single = Album.objects.create(name="Single", name_key="single", artist=artist)
    Track.objects.filter(pk=song.pk).update(album=single)
    bare = Track.objects.create(uri="spotify:track:bare", name="Bare", name_key="bare")
    TrackArtist.objects.create(track=bare, artist=artist, position=0)
    assert Track.objects.get(pk=song.pk).album_id == single.pk
    assert list(Track.objects.get(pk=bare.pk).artists.all()) == [artist]


def test_a_catalogue_row_is_not_deleted_under_the_rows_that_refer_to_it(make_track):
    song = make_track("Song", "Artist", "Album")
    artist, album = song.primary_artist, song.album
    for table, pk, referrer in (
        ("music_artist", artist.pk, "music_track"),
        ("music_album", album.pk, "music_track"),
        ("music_track", song.pk, "music_trackartist"),
    ):
        refused = pytest.raises(
            IntegrityError, match=f'delete on table "{table}" would leave rows of "{referrer}"'
        )
        with refused, transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [pk])  # noqa: S608
    assert (Artist.objects.count(), Album.objects.count(), Track.objects.count()) == (1, 1, 1)
    # The ORM deletes a track's credits with it, then what nothing refers to any more.
    song.delete()
    album.delete()
    artist.delete()
    assert not Artist.objects.exists() and not TrackArtist.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_album_a_writer_refers_to_waits_for_its_commit_to_be_deleted(make_track: Any) -> None:
    album = make_track("Song", "Artist", "Album").album
    _delete_waits_then_is_refused(
        "music_album",
        album.pk,
        lambda: Track.objects.create(
            uri="spotify:track:new", name="New", name_key="new", album=album
        ),
    )
    assert sorted(Track.objects.values_list("name", flat=True)) == ["New", "Song"]
