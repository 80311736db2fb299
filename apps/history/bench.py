"""`manage.py bench polling`: poll 1 000 connected users against the fake Spotify server.

The fake answers every request after 50 ms, as a distant API would. One worker polls the users
one after another (the `poll_user` service, exactly what the Celery task runs), twice:

1. nothing new for anyone: each poll must cost exactly one Spotify request;
2. 50 new plays for every user: one request each, 50 000 plays inserted.

Both run one poll at a time, then again four at a time (a worker's thread pool).

It prints users/s, Spotify requests (in all and per user) and the time spent in the database.
`--quick` polls 100 users.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from apps.accounts import spotify
from apps.accounts.fake_spotify import FakeSpotify, make_track
from apps.accounts.models import REFRESH_TOKEN_LIFETIME, SpotifyAccount, User
from apps.history import collection
from apps.history.models import Play, SyncCheckpoint

LATENCY = 0.05
NEW_PLAYS = 50
# Polls at a time: one after another, then a worker's thread pool (celery -P threads -c 4).
THREADS = (1, 4)
TRACKS = 400


class DatabaseClock:
    """Adds up the time spent in SQL, over every connection it is installed on."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.queries = 0
        self._lock = threading.Lock()

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            with self._lock:
                self.seconds += time.perf_counter() - started
                self.queries += 1


def _setup(fake: FakeSpotify, count: int) -> tuple[list[User], Any]:
    now = timezone.now()
    newest = now - timedelta(hours=2)
    tracks = [
        make_track(f"Song {i}", f"Artist {i % 80}", f"Album {i % 150}") for i in range(TRACKS)
    ]
    users = User.objects.bulk_create(
        [User(username=f"bench{i:05d}", password=make_password(None)) for i in range(count)]
    )
    accounts = []
    for i, user in enumerate(users):
        fake.add_user(user.username)
        fake.add_play(user.username, played_at=newest, track=tracks[i % TRACKS])
        access, refresh = fake.issue_tokens(user.username)
        accounts.append(
            SpotifyAccount(
                user=user,
                spotify_id=user.username,
                access_token=access,
                refresh_token=refresh,
                access_expires_at=now + timedelta(hours=1),
                authorized_at=now,
                refresh_expires_at=now + REFRESH_TOKEN_LIFETIME,
            )
        )
    SpotifyAccount.objects.bulk_create(accounts)
    SyncCheckpoint.objects.bulk_create(
        [SyncCheckpoint(user=u, newest_played_at=newest, last_poll_at=newest) for u in users]
    )
    return users, tracks


def _poll_everyone(users: list[User], fake: FakeSpotify, threads: int) -> dict[str, Any]:
    """Poll every user once with `threads` polls at a time (a worker's concurrency)."""
    fake.reset_counts()
    clock = DatabaseClock()
    pending: queue.SimpleQueue[User] = queue.SimpleQueue()
    for user in users:
        pending.put(user)
    failures: list[str] = []

    def work() -> None:
        try:
            with connection.execute_wrapper(clock):
                while True:
                    try:
                        user = pending.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        collection.poll_user(user=user)
                    except spotify.SpotifyError as exc:
                        failures.append(str(exc))  # one user's error never stops the others
        finally:
            if threads > 1:
                connection.close()

    started = time.perf_counter()
    if threads == 1:
        work()
    else:
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    elapsed = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "users_per_second": len(users) / elapsed,
        "requests": fake.count(),
        "requests_per_user": fake.count() / len(users),
        "db_seconds": clock.seconds,
        "db_queries": clock.queries,
        "failures": len(failures),
        "spotify_wait_seconds": fake.count() * LATENCY,
    }


def _report(out: Any, title: str, figures: dict[str, Any], users: int) -> None:
    out.write(
        f"{title}: {users} users in {figures['seconds']:.1f} s = "
        f"{figures['users_per_second']:.1f} users/s; Spotify requests {figures['requests']} "
        f"({figures['requests_per_user']:.2f} per user, {figures['spotify_wait_seconds']:.1f} s "
        f"of fake latency); DB {figures['db_seconds']:.1f} s in {figures['db_queries']} queries "
        f"({1000 * figures['db_seconds'] / users:.1f} ms per user); failures "
        f"{figures['failures']}"
    )


def run(*, out: Any, options: dict[str, Any]) -> None:
    count = 100 if options.get("quick") else 1000
    # One INFO line per poll would drown the figures.
    logging.getLogger("apps.history.collection").setLevel(logging.WARNING)
    with (
        FakeSpotify(latency=LATENCY, client_id="bench-client") as fake,
        override_settings(
            SPOTIFY_API_BASE_URL=fake.url,
            SPOTIFY_ACCOUNTS_BASE_URL=fake.url,
            SPOTIFY_CLIENT_ID="bench-client",
            SPOTIFY_CLIENT_SECRET="",
        ),
    ):
        cache.delete(spotify.PAUSE_CACHE_KEY)
        out.write(
            f"Fake Spotify at {fake.url}, {int(LATENCY * 1000)} ms per request; one worker "
            f"polling {count} users on {connection.vendor} "
            f"(cache: {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]})"
        )
        users, tracks = _setup(fake, count)
        later = timezone.now() - timedelta(hours=1)
        for threads in THREADS:
            mode = "one at a time" if threads == 1 else f"{threads} at a time (worker threads)"
            out.write(f"-- {mode}")
            idle = _poll_everyone(users, fake, threads)
            _report(out, "Nothing new", idle, count)
            if idle["requests"] != count:
                out.write(f"  !! expected exactly {count} requests, got {idle['requests']}")
            before = Play.objects.count()
            for i, user in enumerate(users):
                for n in range(NEW_PLAYS):
                    fake.add_play(
                        user.username,
                        played_at=later + timedelta(seconds=61 * n, milliseconds=i % 1000),
                        track=tracks[(i * 7 + n) % TRACKS],
                    )
            later += timedelta(seconds=61 * NEW_PLAYS)
            busy = _poll_everyone(users, fake, threads)
            _report(out, f"{NEW_PLAYS} new plays each", busy, count)
            out.write(
                f"  plays added {Play.objects.count() - before} (expected {count * NEW_PLAYS})"
            )
