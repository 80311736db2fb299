"""Shared fixtures.

Integration tests use the real services named by DATABASE_URL and REDIS_URL. With
REQUIRE_SERVICES=1 (as `.ci/run` sets it) a missing service fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from apps.accounts import spotify
from apps.accounts.models import SpotifyAccount, User
from apps.history.models import Play
from apps.music.models import Album, Artist, Source, Track
from apps.music.normalize import normalize_name

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") not in ("", "0", "false")


def missing_service(reason: str) -> None:
    """Skip, or fail when REQUIRE_SERVICES is set: CI must never skip an integration test."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@contextlib.contextmanager
def in_flight(work: Callable[[], Any]) -> Iterator[None]:
    """Run `work` in a transaction on another connection (a write in flight) and keep that
    transaction open while the block runs (tests with transactional_db)."""
    started, release = threading.Event(), threading.Event()

    def run() -> None:
        try:
            with transaction.atomic():
                work()
                started.set()
                release.wait(20)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert started.wait(20), "the write in flight did not start"
        yield
    finally:
        release.set()
        thread.join()


@pytest.fixture
def postgres(db: None) -> None:
    """For tests of the PostgreSQL paths (COPY, concurrency) that SQLite can't show."""
    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        missing_service("needs Redis: set REDIS_URL=redis://...")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        missing_service(f"Redis at {url} is unreachable: {exc}")
    return url


@pytest.fixture
def celery_worker(transactional_db: None, redis_url: str) -> Iterator[Any]:
    """A real Celery worker on the Redis broker, in this process (threads share the test DB)."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    app.control.purge()
    with start_worker(
        app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30
    ) as worker:
        yield worker


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create_user(username="alice", password="pw-alice-123", timezone="UTC")


@pytest.fixture
def other_user(db: None) -> User:
    return User.objects.create_user(username="bob", password="pw-bob-123", timezone="UTC")


@pytest.fixture
def make_track(db: None) -> Callable[..., Track]:
    def make(
        name: str = "Song",
        artist: str = "Artist",
        album: str | None = "Album",
        *,
        uri: str | None = None,
        kind: str = Track.Kind.MUSIC,
        duration_ms: int | None = 200_000,
    ) -> Track:
        artist_row, _ = Artist.objects.get_or_create(
            name_key=normalize_name(artist), defaults={"name": artist}
        )
        album_row = None
        if album:
            album_row, _ = Album.objects.get_or_create(
                artist=artist_row, name_key=normalize_name(album), defaults={"name": album}
            )
        track = Track.objects.create(
            uri=uri or f"spotify:track:{normalize_name(artist)}-{normalize_name(name)}",
            kind=kind,
            name=name,
            name_key=normalize_name(name),
            album=album_row,
            primary_artist=artist_row,
            duration_ms=duration_ms,
            first_source=Source.API,
        )
        track.artists.add(artist_row, through_defaults={"position": 0})
        return track

    return make


@pytest.fixture
def make_play(db: None) -> Callable[..., Play]:
    def make(
        user: User,
        track: Track,
        played_at: datetime,
        *,
        ms_played: int | None = 200_000,
        source: str = Source.EXPORT_EXTENDED,
        **fields: Any,
    ) -> Play:
        return Play.objects.create(
            user=user,
            track=track,
            played_at=played_at,
            ms_played=ms_played,
            source=source,
            **fields,
        )

    return make


# Spotify faked at the HTTP layer with `responses`: its two base URLs, and a connected account.
SPOTIFY_API = "https://api.test"
SPOTIFY_ACCOUNTS = "https://accounts.test"


@pytest.fixture
def responses_spotify(settings: Any) -> Iterator[None]:
    """The Spotify settings pointed at the `responses` URLs, with no app-wide pause around."""
    settings.SPOTIFY_API_BASE_URL = SPOTIFY_API
    settings.SPOTIFY_ACCOUNTS_BASE_URL = SPOTIFY_ACCOUNTS
    settings.SPOTIFY_CLIENT_ID = "cid"
    settings.SPOTIFY_CLIENT_SECRET = ""
    cache.delete(spotify.PAUSE_CACHE_KEY)
    yield
    cache.delete(spotify.PAUSE_CACHE_KEY)


@pytest.fixture
def account(user: User) -> SpotifyAccount:
    return SpotifyAccount.objects.create(
        user=user,
        spotify_id="alice-sp",
        access_token="access-1",
        refresh_token="refresh-1",
        access_expires_at=timezone.now() + timedelta(hours=1),
    )


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (`make test` installs it)."""
    if not os.path.exists(CHROMIUM):
        missing_service(f"needs Chromium at {CHROMIUM}: apt-get install -y chromium")
    # Playwright's sync API runs an event loop in this thread; the test's ORM calls are still
    # synchronous, so Django's async-safety guard is lifted for browser tests only.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """A fresh browser tab against the live test server; screenshots go to var/screenshots/."""
    context = browser.new_context(base_url=live_server.url)
    tab = context.new_page()
    yield tab
    context.close()


def screenshot(page: Any, name: str) -> str:
    """Save a full-page screenshot as a test artifact and return its path."""
    from django.conf import settings

    folder = settings.BASE_DIR / "var" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / f"{name}.png")
    page.screenshot(path=path, full_page=True)
    return path


# --- Spotify: the fake server and connected accounts ----------------------------------------


@pytest.fixture
def fake_spotify(settings: Any) -> Iterator[Any]:
    """A fake Spotify on a real socket, with every Spotify setting pointed at it."""
    from django.core.cache import cache

    from apps.accounts import spotify
    from apps.accounts.fake_spotify import FakeSpotify

    with FakeSpotify(client_id="test-client-id") as fake:
        settings.SPOTIFY_CLIENT_ID = fake.client_id
        settings.SPOTIFY_CLIENT_SECRET = ""
        settings.SPOTIFY_API_BASE_URL = fake.url
        settings.SPOTIFY_ACCOUNTS_BASE_URL = fake.url
        cache.delete(spotify.PAUSE_CACHE_KEY)
        yield fake
        cache.delete(spotify.PAUSE_CACHE_KEY)


@pytest.fixture
def connect_fake(fake_spotify: Any) -> Callable[..., Any]:
    """Give a user a SpotifyAccount holding tokens the fake Spotify accepts."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.accounts.models import REFRESH_TOKEN_LIFETIME, SpotifyAccount

    def connect(user: User, spotify_id: str | None = None, **fields: Any) -> SpotifyAccount:
        spotify_id = spotify_id or user.username
        if spotify_id not in fake_spotify.users:
            fake_spotify.add_user(spotify_id)
        access, refresh = fake_spotify.issue_tokens(spotify_id)
        now = timezone.now()
        values: dict[str, Any] = {
            "spotify_id": spotify_id,
            "access_token": access,
            "refresh_token": refresh,
            "access_expires_at": now + timedelta(hours=1),
            "authorized_at": now,
            "refresh_expires_at": now + REFRESH_TOKEN_LIFETIME,
            **fields,
        }
        return SpotifyAccount.objects.create(user=user, **values)

    return connect
