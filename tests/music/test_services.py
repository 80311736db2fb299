"""The catalogue writes: artists, albums and tracks found or created once, whoever wrote first."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from apps.music import services
from apps.music.models import Album, Artist, Source, Track, TrackArtist
from apps.music.services import TrackInfo, resolve_tracks


def infos() -> list[TrackInfo]:
    return [
        TrackInfo(name="Halo", artist_name="Beyoncé", album_name="I Am", uri="spotify:track:h"),
        TrackInfo(name="Halo", artist_name="BEYONCE", album_name="i am", uri="spotify:track:h"),
        TrackInfo(name="Sweet Dreams", artist_name="Beyonce", album_name="I Am"),
        TrackInfo(
            name="Hoppípolla",
            artist_name="Sigur Rós",
            album_name="Takk...",
            uri="spotify:track:s",
            album_spotify_id="album-takk",
            artists=(("Sigur Rós", "artist-sr"), ("Guest", None)),
        ),
    ]


def test_items_resolve_to_one_row_each_and_again_to_the_same_ids(db: None) -> None:
    ids = resolve_tracks(infos(), source=Source.EXPORT_EXTENDED)
    assert ids[0] == ids[1] != ids[2]
    assert sorted(Artist.objects.values_list("name", "spotify_id")) == [
        ("Beyoncé", None),
        ("Guest", None),
        ("Sigur Rós", "artist-sr"),
    ]
    assert sorted(Album.objects.values_list("name", "artist__name", "spotify_id")) == [
        ("I Am", "Beyoncé", None),
        ("Takk...", "Sigur Rós", "album-takk"),
    ]
    tracks = Track.objects.order_by("pk")
    assert [(t.name, t.album.name, t.primary_artist.name) for t in tracks] == [  # type: ignore[union-attr]
        ("Halo", "I Am", "Beyoncé"),
        ("Sweet Dreams", "I Am", "Beyoncé"),
        ("Hoppípolla", "Takk...", "Sigur Rós"),
    ]
    assert Track.objects.get(pk=ids[2]).uri.startswith("local:")
    credits = TrackArtist.objects.filter(track_id=ids[3]).order_by("position")
    assert [(c.artist.name, c.position) for c in credits] == [("Sigur Rós", 0), ("Guest", 1)]

    assert resolve_tracks(infos(), source=Source.API) == ids
    assert (Artist.objects.count(), Album.objects.count(), Track.objects.count()) == (3, 2, 3)


def test_credits_are_the_apis_and_reach_a_track_first_known_from_an_export(db: None) -> None:
    """An export names the album's artist alone: the track's primary artist, no credit. The
    API's credit list, when it names the track, is kept, and a credit held stays."""
    exported = TrackInfo(
        name="Duet", artist_name="Singer", album_name="Pairs", uri="spotify:track:d"
    )
    (track_id,) = resolve_tracks([exported], source=Source.EXPORT_EXTENDED)
    assert Track.objects.get(pk=track_id).primary_artist.name == "Singer"  # type: ignore[union-attr]
    assert not TrackArtist.objects.exists()

    from_api = TrackInfo(
        name="Duet",
        artist_name="Singer",
        uri="spotify:track:d",
        artists=(("Singer", "artist-s"), ("Guest", "artist-g")),
    )
    assert resolve_tracks([from_api], source=Source.API) == [track_id]
    assert resolve_tracks([from_api], source=Source.API) == [track_id]
    credits = TrackArtist.objects.filter(track_id=track_id).order_by("position")
    assert [(c.artist.name, c.position) for c in credits] == [("Singer", 0), ("Guest", 1)]


def test_a_track_another_writer_added_first_is_found(db: None) -> None:
    """The insert skips what exists; the ids of those rows are read back."""
    resolve_tracks(infos()[:1])
    existing = Track.objects.get(uri="spotify:track:h")
    row = (Track.Kind.MUSIC, "Other", "other", None, None, 1000)
    ids = services._insert_tracks(
        {"spotify:track:h": row, "spotify:track:new": row}, source=Source.API
    )
    assert ids == {
        "spotify:track:h": existing.pk,
        "spotify:track:new": Track.objects.get(uri="spotify:track:new").pk,
    }
    assert Track.objects.get(pk=existing.pk).name == "Halo"


def test_an_album_another_writer_added_first_is_found(
    postgres: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The album is missing at the lookup, then exists at the insert (another import won)."""
    resolve_tracks(infos()[:1])
    album = Album.objects.get()
    real = services._fetch_albums_postgresql
    calls: list[Any] = []

    def first_misses(keys: Any) -> Any:
        calls.append(keys)
        return {} if len(calls) == 1 else real(keys)

    monkeypatch.setattr(services, "_fetch_albums_postgresql", first_misses)
    info = TrackInfo(name="Halo 2", artist_name="Beyoncé", album_name="I Am", uri="spotify:track:2")
    [track_id] = resolve_tracks([info])
    assert len(calls) == 2
    assert Track.objects.get(pk=track_id).album_id == album.pk
    assert Album.objects.count() == 1


def test_an_album_is_unique_per_artist_and_name_on_both_databases(db: None) -> None:
    """One album per (artist, name key), and one per name key among albums without an artist:
    enforced by the database (on SQLite too), so two writers can never make two."""
    from django.core import checks
    from django.db import IntegrityError, transaction

    artist = Artist.objects.create(name="Radiohead", name_key="radiohead")
    other = Artist.objects.create(name="Ok Go", name_key="ok go")
    Album.objects.create(name="OK Computer", name_key="ok computer", artist=artist)
    Album.objects.create(name="OK Computer", name_key="ok computer", artist=other)
    Album.objects.create(name="OK Computer", name_key="ok computer")
    for again in (artist, None):
        with pytest.raises(IntegrityError), transaction.atomic():
            Album.objects.create(name="Ok computer", name_key="ok computer", artist=again)
    assert Album.objects.count() == 3
    # Nothing the database cannot enforce is left to a warning.
    assert [m.id for m in checks.run_checks() if m.id == "models.W047"] == []


def test_albums_with_and_without_an_artist_resolve_to_the_same_rows_again(db: None) -> None:
    """The album lookup finds (artist, name) pairs and artistless names, more than one query's
    worth of them, and never creates one twice."""
    batch = [
        TrackInfo(name=f"Song {i}", artist_name=f"Artist {i % 7}", album_name=f"Album {i}")
        for i in range(services._ALBUMS_PER_QUERY + 30)
    ] + [TrackInfo(name="Loose", artist_name="", album_name="No One's Album")]
    first = resolve_tracks(batch)
    assert Album.objects.count() == len(batch)
    assert Album.objects.get(name_key="no one's album").artist_id is None
    again = [
        TrackInfo(name=f"Other {i.name}", artist_name=i.artist_name, album_name=i.album_name)
        for i in batch
    ]
    second = resolve_tracks(again)
    assert Album.objects.count() == len(batch)
    albums = dict(Track.objects.values_list("pk", "album_id"))
    assert [albums[t] for t in second] == [albums[t] for t in first]


def test_a_local_play_folded_into_the_real_tracks_play_follows_the_insert_paths_rule(
    user, make_track, make_play
):
    """An Extended play of a local song is the real track's Account Data play of that minute:
    the play takes its second, details and source, as the insert path's merge does."""
    from datetime import UTC, datetime

    from apps.history.models import Play
    from apps.music.models import Source
    from apps.music.normalize import local_track_uri
    from apps.music.services import merge_local_tracks

    real = make_track("Karma Police", "Radiohead", uri="spotify:track:kp")
    local = make_track(
        "Karma Police", "Radiohead", None, uri=local_track_uri("Radiohead", "Karma Police", None)
    )
    minute = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
    make_play(user, real, minute, ms_played=214_000, source=Source.EXPORT_ACCOUNT)
    make_play(user, local, minute.replace(second=1), ms_played=214_306, reason_end="trackdone")
    assert merge_local_tracks([(real.pk, real.kind, real.primary_artist_id, real.name_key)]) == {
        local.pk: real.pk
    }
    play = Play.objects.get()
    assert (play.track_id, play.played_at, play.ms_played, play.reason_end, play.source) == (
        real.pk,
        minute.replace(second=1),
        214_306,
        "trackdone",
        Source.EXPORT_EXTENDED,
    )


def test_a_local_play_folds_into_the_real_play_at_its_own_time_before_a_nearby_one(
    user, make_track, make_play
):
    """Of the real track's plays a local play matches, the one at its own time (at its
    precision) takes it, as in the insert path: the Account Data play of that minute, listed
    first, keeps its minute, and nothing collides with the play that already holds the time."""
    from datetime import UTC, datetime

    from apps.history.models import Play
    from apps.music.models import Source
    from apps.music.normalize import local_track_uri
    from apps.music.services import merge_local_tracks

    real = make_track("Airbag", "Radiohead", uri="spotify:track:ab")
    local = make_track(
        "Airbag", "Radiohead", None, uri=local_track_uri("Radiohead", "Airbag", None)
    )
    minute = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
    account = make_play(user, real, minute, ms_played=30_000, source=Source.EXPORT_ACCOUNT)
    api = make_play(
        user, real, minute.replace(second=4, microsecond=250_000), ms_played=None, source=Source.API
    )
    exact = make_play(user, real, minute.replace(second=40), ms_played=20_000)
    make_play(user, local, minute.replace(second=4), ms_played=4_000, reason_end="endplay")
    make_play(user, local, minute.replace(second=40), ms_played=20_000)
    merge_local_tracks([(real.pk, real.kind, real.primary_artist_id, real.name_key)])
    plays = {
        p.pk: (p.played_at, p.source, p.ms_played, p.reason_end)
        for p in Play.objects.filter(user=user)
    }
    assert plays == {
        account.pk: (minute, Source.EXPORT_ACCOUNT, 30_000, ""),
        # The API play keeps its milliseconds and takes the export's details.
        api.pk: (minute.replace(second=4, microsecond=250_000), Source.API, 4_000, "endplay"),
        exact.pk: (minute.replace(second=40), Source.EXPORT_EXTENDED, 20_000, ""),
    }
    assert not Play.objects.filter(track=local).exists()


def test_local_tracks_are_found_by_their_own_index(postgres: None) -> None:
    """Only `local:` URIs are looked up by prefix: through track_local, without the pattern
    index Django adds for LIKE (migration 0006), which each new track paid an entry in."""
    resolve_tracks(infos(), source=Source.EXPORT_EXTENDED)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'music_track'")
        names = {row[0] for row in cursor.fetchall()}
        assert "track_local" in names
        assert not [name for name in names if name.endswith("_like")]
        cursor.execute("SET LOCAL enable_seqscan = off")
        query = Track.objects.filter(uri__startswith="local:").values_list("name", flat=True)
        assert "track_local" in query.explain()
    assert list(query) == ["Sweet Dreams"]
