"""Local songs (Account Data rows) found on Spotify later, in the background: imports never call
Spotify; the hourly search folds each song it finds into the real track, plays and all."""

import pytest

from apps.accounts.fake_spotify import make_track
from apps.accounts.spotify import SpotifyRateLimited
from apps.history import collection, tasks
from apps.history.models import JobRun, Play
from apps.imports import services
from apps.music.models import Track
from apps.music.normalize import local_track_uri
from tests.imports.conftest import account

pytestmark = pytest.mark.django_db

ACCOUNT_DATA = "Spotify Account Data/StreamingHistory_music_0.json"


def _import(user, path):
    job = services.create_local_job(user=user, path=path, queue=False)
    return services.run_import(job_id=job.pk)


def test_local_songs_are_found_on_spotify_once_and_take_their_plays(
    user, connect_fake, fake_spotify, export_zip
):
    connect_fake(user)
    real = make_track("Karma Police", "Radiohead", "OK Computer")
    near_miss = make_track("Unknown Demo (Live)", "Nobody", "Live")
    fake_spotify.users["alice"].top_tracks += [real, near_miss]
    rows = [
        account("2025-03-14 18:23", "Karma Police", "Radiohead"),
        account("2025-03-15 09:00", "Unknown Demo", "Nobody"),
        account("2025-03-16 20:00", "Karma Police", "Radiohead"),
    ]
    assert _import(user, export_zip({ACCOUNT_DATA: rows})).plays_added == 3
    assert fake_spotify.count() == 0  # imports never call Spotify
    assert collection.users_with_local_tracks() == [user.pk]

    run = collection.resolve_local_tracks(user=user)

    assert (run.status, run.counts) == (
        JobRun.Status.SUCCEEDED,
        {"searched": 2, "found": 1, "left": 0},
    )
    assert fake_spotify.count("/v1/search") == 2
    plays = Play.objects.for_user(user).order_by("played_at").select_related("track__album")
    assert [(p.track.uri, p.track.album and p.track.album.name) for p in plays] == [
        (real["uri"], "OK Computer"),
        (local_track_uri("Nobody", "Unknown Demo", None), None),
        (real["uri"], "OK Computer"),
    ]
    # The near miss ("Unknown Demo (Live)") is not the song; it is left local, searched once.
    demo = Track.objects.get(uri=local_track_uri("Nobody", "Unknown Demo", None))
    assert demo.searched_at is not None
    assert collection.users_with_local_tracks() == []
    again = collection.resolve_local_tracks(user=user)
    assert again.counts == {"searched": 0, "found": 0, "left": 0}
    assert fake_spotify.count("/v1/search") == 2


def test_a_rate_limit_ends_the_run_and_the_song_is_searched_for_later(
    user, connect_fake, fake_spotify, export_zip
):
    connect_fake(user)
    fake_spotify.users["alice"].top_tracks.append(make_track("Karma Police", "Radiohead"))
    _import(
        user, export_zip({ACCOUNT_DATA: [account("2025-03-14 18:23", "Karma Police", "Radiohead")]})
    )
    fake_spotify.fail_next("/v1/search", 429, headers={"Retry-After": "1"})
    with pytest.raises(SpotifyRateLimited):
        collection.resolve_local_tracks(user=user)
    failed = JobRun.objects.get(user=user, type=JobRun.Type.RESOLVE)
    assert failed.status == JobRun.Status.FAILED
    assert "rate" in failed.error.lower()
    assert Track.objects.get().searched_at is None
    assert collection.users_with_local_tracks() == [user.pk]


def test_the_hourly_fan_out_is_scheduled_and_can_be_turned_off(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["resolve-local-tracks"]
    assert (entry["task"], entry["schedule"]) == (
        "apps.history.tasks.queue_local_track_searches",
        3600.0,
    )
    settings.RESOLVE_SEARCHES_PER_RUN = 0
    assert tasks.queue_local_track_searches() == 0


def test_a_polled_play_and_its_account_data_row_are_one_play_in_either_order(
    user, other_user, connect_fake, fake_spotify, export_zip
):
    from datetime import UTC, datetime

    polled_at = datetime(2025, 3, 14, 18, 23, 41, 306000, tzinfo=UTC)
    row = account("2025-03-14 18:23", "Karma Police", "Radiohead", ms=214_306)
    for person, spotify_id, poll_first in ((user, "alice", True), (other_user, "bob", False)):
        connect_fake(person, spotify_id)
        fake_spotify.add_play(
            spotify_id, played_at=polled_at, name="Karma Police", artist="Radiohead"
        )
        if poll_first:
            assert collection.poll_user(user=person).counts["added"] == 1
            job = _import(person, export_zip({ACCOUNT_DATA: [row]}))
            assert (job.plays_added, job.duplicates) == (0, 1)
        else:
            assert _import(person, export_zip({ACCOUNT_DATA: [row]})).plays_added == 1
            counts = collection.poll_user(user=person).counts
            assert (counts["added"], counts["duplicates"]) == (0, 1)
        plays = Play.objects.for_user(person).select_related("track")
        assert [(p.track.uri, p.played_at, p.ms_played) for p in plays] == [
            (make_track("Karma Police", "Radiohead")["uri"], polled_at, 214_306)
        ]
    assert not Track.objects.filter(uri__startswith="local:").exists()
