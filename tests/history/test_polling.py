"""Polling against the fake Spotify on a real socket."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from apps.accounts.spotify import SpotifyNotRegistered
from apps.history import collection
from apps.history.models import JobRun, Play, SyncCheckpoint

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
