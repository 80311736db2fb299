"""Polling against the fake Spotify on a real socket."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.accounts.spotify import SpotifyNotRegistered
from apps.history import collection
from apps.history.models import JobRun, LogEvent, Play, SyncCheckpoint

pytestmark = pytest.mark.django_db


def test_first_poll_stores_the_latest_plays_and_records_the_run(user, connect_fake, fake_spotify):
    connect_fake(user)
    base = timezone.now() - timedelta(hours=1)
    for i in range(3):
        fake_spotify.add_play("alice", played_at=base + timedelta(minutes=i), name=f"Song {i}")

    run = collection.poll_user(user=user)

    assert run.status == JobRun.Status.SUCCEEDED
    assert run.counts == {"requests": 1, "fetched": 3, "added": 3, "duplicates": 0, "merged": 0}
    names = list(
        Play.objects.for_user(user).order_by("played_at").values_list("track__name", flat=True)
    )
    assert names == ["Song 0", "Song 1", "Song 2"]
    checkpoint = SyncCheckpoint.objects.get(user=user)
    assert checkpoint.newest_played_at == Play.objects.for_user(user).latest("played_at").played_at
    assert checkpoint.last_success_at is not None


def test_a_poll_with_nothing_new_costs_exactly_one_request_after_the_newest_play(
    user, connect_fake, fake_spotify
):
    connect_fake(user)
    newest = datetime(2026, 11, 25, 10, 0, 41, 306000, tzinfo=UTC)
    fake_spotify.add_play("alice", played_at=newest - timedelta(minutes=4), name="Old")
    fake_spotify.add_play("alice", played_at=newest, name="New")
    collection.poll_user(user=user)
    fake_spotify.reset_counts()

    run = collection.poll_user(user=user)

    assert fake_spotify.count() == 1
    _method, path, query, _ = fake_spotify.log[0]
    assert path == "/v1/me/player/recently-played"
    assert query == {"after": str(int(newest.timestamp() * 1000)), "limit": "50"}
    assert run.counts["added"] == 0 and run.counts["requests"] == 1
    assert Play.objects.for_user(user).count() == 2


def test_an_allow_list_403_is_recorded_with_what_to_do(user, connect_fake, fake_spotify):
    connect_fake(user)
    fake_spotify.users["alice"].registered = False

    with pytest.raises(SpotifyNotRegistered, match="Developer Dashboard"):
        collection.poll_user(user=user)

    run = JobRun.objects.get(user=user)
    assert run.status == JobRun.Status.FAILED
    assert "User Management" in run.error
    assert SyncCheckpoint.objects.get(user=user).consecutive_errors == 1
    event = LogEvent.objects.get(user=user, job_run=run)
    assert "allow-list" in event.message


def test_a_poll_follows_next_until_every_new_play_is_in(user, connect_fake, fake_spotify):
    connect_fake(user)
    start = timezone.now() - timedelta(days=1)
    fake_spotify.add_play("alice", played_at=start, name="Seen")
    collection.poll_user(user=user)
    for i in range(120):
        fake_spotify.add_play("alice", played_at=start + timedelta(minutes=i + 1), name=f"S{i}")
    fake_spotify.reset_counts()

    run = collection.poll_user(user=user)

    assert run.counts["requests"] == 3  # 50 + 50 + 20, each page `after` the last one
    assert run.counts["added"] == 120
    assert Play.objects.for_user(user).count() == 121
    assert fake_spotify.count() == 3


def test_an_api_play_at_306_ms_and_the_same_export_play_at_whole_seconds_are_one_row(
    user, connect_fake, fake_spotify, make_track, make_play
):
    from apps.accounts.fake_spotify import make_track as spotify_track
    from apps.music.models import Source

    connect_fake(user)
    payload = spotify_track("Paranoid Android", "Radiohead", "OK Computer", track_id="4uLU6h")
    track = make_track("Paranoid Android", "Radiohead", "OK Computer", uri="spotify:track:4uLU6h")
    exported = make_play(
        user,
        track,
        datetime(2025, 3, 14, 18, 23, 41, tzinfo=UTC),
        ms_played=214306,
        source=Source.EXPORT_EXTENDED,
        reason_end="trackdone",
    )
    fake_spotify.add_play(
        "alice", played_at=datetime(2025, 3, 14, 18, 23, 41, 306000, tzinfo=UTC), track=payload
    )

    run = collection.poll_user(user=user)

    assert run.counts["added"] == 0 and run.counts["duplicates"] == 1
    play = Play.objects.for_user(user).get()
    assert play.pk == exported.pk
    assert play.played_at == datetime(2025, 3, 14, 18, 23, 41, 306000, tzinfo=UTC)
    assert (play.ms_played, play.reason_end) == (214306, "trackdone")


def test_null_context_and_played_at_without_milliseconds_are_read(user, connect_fake, fake_spotify):
    connect_fake(user)
    fake_spotify.add_play(
        "alice", played_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), name="Whole", millis=False
    )
    fake_spotify.add_play(
        "alice",
        played_at=datetime(2026, 1, 2, 3, 9, 5, 7000, tzinfo=UTC),
        name="Milli",
        context={"type": "playlist", "uri": "spotify:playlist:x"},
    )

    collection.poll_user(user=user)

    got = dict(Play.objects.for_user(user).values_list("track__name", "played_at"))
    assert got == {
        "Whole": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "Milli": datetime(2026, 1, 2, 3, 9, 5, 7000, tzinfo=UTC),
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-03-14T18:23:41.306Z", datetime(2025, 3, 14, 18, 23, 41, 306000, tzinfo=UTC)),
        ("2025-03-14T18:23:41Z", datetime(2025, 3, 14, 18, 23, 41, tzinfo=UTC)),
        ("2025-03-14T19:23:41.5+01:00", datetime(2025, 3, 14, 18, 23, 41, 500000, tzinfo=UTC)),
    ],
)
def test_played_at_is_parsed_as_utc(raw, expected):
    assert collection.parse_played_at(raw) == expected


def test_the_empty_page_shape_stores_nothing_and_keeps_the_checkpoint(
    user, connect_fake, fake_spotify
):
    connect_fake(user)
    run = collection.poll_user(user=user)  # Spotify's empty page: items [], next null, cursors null

    assert run.status == JobRun.Status.SUCCEEDED
    assert run.counts["fetched"] == 0
    checkpoint = SyncCheckpoint.objects.get(user=user)
    assert checkpoint.newest_played_at is None and checkpoint.last_poll_at is not None


def test_a_user_whose_lock_is_held_is_skipped(user, connect_fake, fake_spotify):
    connect_fake(user)
    with collection.user_lock(user.pk) as locked:
        assert locked
        run = collection.poll_user(user=user)
        sync = collection.initial_sync(user=user)

    assert run.status == sync.status == JobRun.Status.SKIPPED
    assert "another collection task" in run.counts["skipped"]
    assert fake_spotify.count() == 0
    assert collection.poll_user(user=user).status == JobRun.Status.SUCCEEDED


def test_one_users_error_does_not_stop_the_others(user, other_user, connect_fake, fake_spotify):
    from apps.history import tasks

    connect_fake(user)
    connect_fake(other_user)
    fake_spotify.users["alice"].registered = False
    fake_spotify.add_play("bob", played_at=timezone.now(), name="Bob's song")

    assert tasks.poll_user(user.pk) == "failed"
    assert tasks.poll_user(other_user.pk) == "succeeded"

    assert Play.objects.for_user(other_user).count() == 1
    assert JobRun.objects.get(user=user).status == JobRun.Status.FAILED


def test_invalid_grant_stops_polling_until_the_user_reconnects(user, connect_fake, fake_spotify):
    from apps.accounts.models import SpotifyAccount
    from apps.accounts.spotify import SpotifyReauthRequired

    account = connect_fake(user, access_expires_at=timezone.now() - timedelta(minutes=5))
    fake_spotify.revoke(account.refresh_token.reveal())

    with pytest.raises(SpotifyReauthRequired):
        collection.poll_user(user=user)

    account = SpotifyAccount.objects.get(user=user)
    assert account.needs_reauth
    assert collection.due_user_ids() == []
    assert collection.poll_user(user=user).status == JobRun.Status.SKIPPED
    assert fake_spotify.count("/api/token") == 1


def test_poll_now_queues_the_task_on_commit(user, connect_fake, django_capture_on_commit_callbacks):
    connect_fake(user)
    with django_capture_on_commit_callbacks() as callbacks:
        collection.request_poll(user=user)
    assert len(callbacks) == 1
    assert "poll_user" in callbacks[0].__code__.co_names


def test_sync_status_reports_state_token_expiry_and_the_app_wide_pause(
    user, connect_fake, fake_spotify
):
    from django.core.cache import cache

    from apps.accounts import spotify

    connect_fake(user, refresh_expires_at=timezone.now() + timedelta(days=20, hours=1))
    fake_spotify.add_play("alice", played_at=timezone.now(), name="Song")
    collection.poll_user(user=user)
    cache.set(spotify.PAUSE_CACHE_KEY, {"until": time.time() + 300, "quota": True}, 310)

    status = collection.sync_status(user=user)

    assert status["connected"] and status["status"] == "active"
    assert status["days_until_token_expiry"] == 20
    assert status["plays"] == 1
    assert status["last_success_at"] is not None
    assert status["spotify_pause_is_daily_quota"] is True
    assert status["spotify_paused_until"] is not None
