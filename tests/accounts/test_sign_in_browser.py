"""A person signs in with Spotify in Chromium; the fake Spotify approves; the worker's
initial sync stores their recent plays."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import SpotifyAccount
from apps.history.models import JobRun, Play
from tests.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.slow]


def test_sign_in_with_spotify_in_a_browser_then_plays_arrive(
    browser, live_server, celery_worker, fake_spotify
):
    fake_spotify.add_user("alice-sp", "Alice Liddell")
    fake_spotify.next_login = "alice-sp"
    for i in range(30):
        fake_spotify.add_play(
            "alice-sp", played_at=timezone.now() - timedelta(minutes=5 * i), name=f"Song {i}"
        )
    # Spotify accepts loopback redirect URIs only as 127.0.0.1, never localhost.
    base = live_server.url.replace("localhost", "127.0.0.1")
    context = browser.new_context(base_url=base)
    page = context.new_page()
    try:
        page.goto("/accounts/login/")
        page.get_by_role("link", name="Spotify").click()
        page.get_by_role("button", name="Continue").click()  # allauth's confirmation (POST)
        page.wait_for_url(f"{base}/")
        assert "Sign out (" in page.content()
        screenshot(page, "signed-in-with-spotify")
    finally:
        context.close()

    account = SpotifyAccount.objects.get(spotify_id="alice-sp")
    assert account.display_name == "Alice Liddell"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sync = JobRun.objects.filter(
            user=account.user, type=JobRun.Type.INITIAL_SYNC, finished_at__isnull=False
        ).first()
        if sync:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the initial sync never finished")
    assert sync.status == JobRun.Status.SUCCEEDED
    assert Play.objects.for_user(account.user).count() == 30
