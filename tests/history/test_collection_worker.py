"""The collection tasks on a real Celery worker (Redis broker, PostgreSQL), against the fake
Spotify on a real socket."""

import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client
from django.utils import timezone

from apps.accounts import spotify
from apps.accounts.models import SpotifyAccount, User
from apps.history import collection, tasks
from apps.history.models import JobRun, Play, SyncCheckpoint

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wait_for(condition, timeout=30.0, what="the worker"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sign_in_runs_the_initial_sync_on_the_worker_and_polls_add_nothing_twice(
    celery_worker, fake_spotify
):
    fake_spotify.add_user("alice-sp", "Alice")
    now = timezone.now()
    for i in range(120):
        fake_spotify.add_play(
            "alice-sp", played_at=now - timedelta(hours=i, seconds=7), name=f"Song {i % 40}"
        )

    # Sign in with Spotify: the browser's round trip, through the fake authorize endpoint.
    client = Client(HTTP_HOST="127.0.0.1:8000")
    fake_spotify.next_login = "alice-sp"
    start = client.post("/accounts/spotify/login/", {"process": "login"})
    approved = requests.get(start["Location"], allow_redirects=False, timeout=5)
    back = urlsplit(approved.headers["Location"])
    assert client.get(back.path, parse_qs(back.query))["Location"] == "/"
    user = User.objects.get(spotify__spotify_id="alice-sp")

    sync = wait_for(
        lambda: JobRun.objects.filter(
            user=user, type=JobRun.Type.INITIAL_SYNC, finished_at__isnull=False
        ).first(),
        what="the initial sync",
    )
    assert sync.status == JobRun.Status.SUCCEEDED
    assert sync.counts["stop_reason"] == "empty_page"
    assert sync.counts["added"] == 120
    assert Play.objects.for_user(user).count() == 120
    checkpoint = SyncCheckpoint.objects.get(user=user)
    assert checkpoint.initial_sync_stop_reason == "empty_page"
    oldest = Play.objects.for_user(user).earliest("played_at").played_at
    assert checkpoint.earliest_played_at == oldest

    # A poll finds one new play; the next finds nothing, in exactly one request.
    fake_spotify.add_play("alice-sp", played_at=timezone.now(), name="Brand new")
    tasks.poll_user.delay(user.pk)
    first = wait_for(
        lambda: (
            JobRun.objects.filter(user=user, type=JobRun.Type.POLL, finished_at__isnull=False)
            .order_by("-pk")
            .first()
        )
    )
    assert first.status == JobRun.Status.SUCCEEDED
    assert (first.counts["added"], first.counts["requests"]) == (1, 1)
    fake_spotify.reset_counts()
    tasks.poll_user.delay(user.pk)
    second = wait_for(
        lambda: JobRun.objects.filter(
            user=user, type=JobRun.Type.POLL, finished_at__isnull=False, pk__gt=first.pk
        ).first()
    )
    assert second.counts == {"requests": 1, "fetched": 0, "added": 0, "duplicates": 0, "merged": 0}
    assert fake_spotify.count() == 1
    assert Play.objects.for_user(user).count() == 121


def test_two_workers_under_a_429_storm_make_no_call_while_the_pause_is_on(
    celery_worker, fake_spotify, connect_fake
):
    users = [User.objects.create_user(username=f"user{i}") for i in range(6)]
    for user in users:
        connect_fake(user)
        fake_spotify.add_play(user.username, played_at=timezone.now(), name="Song")
    recent = "/v1/me/player/recently-played"
    fake_spotify.fail_next(
        recent, 429, {"error": {"status": 429}}, headers={"Retry-After": "2"}, times=2
    )

    for user in users:
        tasks.poll_user.delay(user.pk)

    wait_for(
        lambda: JobRun.objects.filter(type=JobRun.Type.POLL, status="succeeded").count() == 6,
        timeout=60,
        what="every poll to succeed after the pause",
    )
    answers = [(t, status) for t, path, status in fake_spotify.answers if path == recent]
    first_429 = min(t for t, status in answers if status == 429)
    # While the pause (2 s from the first 429) is on, no worker sends anything; the only
    # requests near the 429 are ones already in flight when it arrived.
    during = [t for t, _ in answers if first_429 + 0.25 < t < first_429 + 1.9]
    assert during == []
    assert sum(1 for _, status in answers if status == 200) == 6
    failed = JobRun.objects.filter(type=JobRun.Type.POLL, status="failed")
    assert failed.exists()
    assert all("paused until" in run.error for run in failed)
    assert Play.objects.count() == 6
    assert spotify.rate_limit_pause() is None


def test_the_fan_out_queues_due_users_only(celery_worker, fake_spotify, connect_fake):
    due, paused, recent = (
        User.objects.create_user(username=n) for n in ("due", "paused", "recent")
    )
    for user in (due, paused, recent):
        connect_fake(user)
        fake_spotify.add_play(user.username, played_at=timezone.now(), name="Song")
    SpotifyAccount.objects.filter(user=paused).update(paused=True)
    SyncCheckpoint.objects.create(user=recent, last_poll_at=timezone.now())

    assert collection.queue_due_polls() == 1
    wait_for(
        lambda: JobRun.objects.filter(type=JobRun.Type.POLL, status="succeeded").count() == 1,
        what="the polls",
    )
    time.sleep(0.5)
    polled = set(
        JobRun.objects.filter(type=JobRun.Type.POLL).values_list("user__username", flat=True)
    )
    assert polled == {"due"}


def test_another_process_respects_the_pause_set_by_this_one(
    transactional_db, redis_url, fake_spotify, connect_fake, user, settings
):
    import os
    import subprocess
    import sys

    from django.db import connection

    from tests.conftest import missing_service

    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL: a second process can't see SQLite's test database")
    connect_fake(user)
    fake_spotify.fail_next(
        "/v1/me/player/recently-played",
        429,
        {"error": {"status": 429}},
        headers={"Retry-After": "60"},
    )
    with pytest.raises(spotify.SpotifyRateLimited):
        collection.poll_user(user=user)
    assert fake_spotify.count() == 1

    # A separate process (another worker) on the same database and Redis: it makes no call.
    env = {
        **os.environ,
        "DATABASE_URL": os.environ["DATABASE_URL"].rsplit("/", 1)[0]
        + "/"
        + connection.settings_dict["NAME"],
        "REDIS_URL": redis_url,
        "SPOTIFY_API_BASE_URL": fake_spotify.url,
        "SPOTIFY_ACCOUNTS_BASE_URL": fake_spotify.url,
        "SPOTIFY_CLIENT_ID": fake_spotify.client_id,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "poll_now", "--user", user.username],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "Spotify is rate-limiting this app; calls are paused until" in result.stderr
    assert fake_spotify.count() == 1
