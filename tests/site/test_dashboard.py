from datetime import UTC, datetime, timedelta

from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import SpotifyAccount
from apps.history.models import JobRun, Play, SyncCheckpoint
from apps.imports.models import ImportJob


def _body(client, user):
    client.force_login(user)
    return " ".join(client.get(reverse("dashboard")).content.decode().split())


def test_counts_plays_by_source_for_the_viewer_only(
    client, user, other_user, make_track, make_play
):
    track = make_track()
    for minute in range(3):
        make_play(user, track, datetime(2025, 1, 1, 0, minute, tzinfo=UTC))
    make_play(user, track, datetime(2025, 1, 2, tzinfo=UTC), source=Play.Source.API)
    for minute in range(5):
        make_play(other_user, track, datetime(2025, 1, 1, 0, minute, tzinfo=UTC))
    body = _body(client, user)
    assert '<p class="big" id="plays-total">4</p>' in body
    assert '<th scope="row">Extended streaming history</th><td class="num">3</td>' in body
    assert '<th scope="row">Spotify API</th><td class="num">1</td>' in body


def test_without_spotify_it_says_nothing_is_collected(client, user):
    body = _body(client, user)
    assert "Spotify is not connected, so nothing is collected automatically." in body


def test_shows_status_last_poll_and_recent_runs_and_imports(client, user, other_user):
    SpotifyAccount.objects.create(
        user=user, spotify_id="alice-sp", display_name="Alice S", refresh_token="r"
    )
    SyncCheckpoint.objects.create(user=user, last_poll_at=timezone.now() - timedelta(minutes=5))
    JobRun.objects.create(user=user, type=JobRun.Type.POLL, status="succeeded", counts={"added": 7})
    JobRun.objects.create(user=other_user, type=JobRun.Type.INITIAL_SYNC, error="bob's error")
    ImportJob.objects.create(
        user=user, file="x.zip", original_name="alice.zip", plays_added=42, status="succeeded"
    )
    ImportJob.objects.create(user=other_user, file="y.zip", original_name="bob.zip")
    body = _body(client, user)
    assert "Alice S" in body
    assert '<dd id="collection-state">Collecting</dd>' in body
    assert '<dd id="last-poll">5 minutes ago</dd>' in body
    assert "Poll</td> <td>Succeeded, 7 added" in body
    assert "alice.zip" in body and '<td class="num">42</td>' in body
    assert "bob.zip" not in body and "bob&#x27;s error" not in body and "Initial sync" not in body


def test_paused_account_says_paused(client, user):
    SpotifyAccount.objects.create(user=user, spotify_id="alice-sp", paused=True, refresh_token="r")
    body = _body(client, user)
    assert '<dd id="collection-state">Paused</dd>' in body
    assert '<dd id="last-poll">not yet</dd>' in body


def test_before_the_first_poll_it_says_when_it_comes(client, user, settings):
    settings.COLLECTOR_INTERVAL_SECONDS = 600
    SpotifyAccount.objects.create(user=user, spotify_id="alice-sp", refresh_token="r")
    body = _body(client, user)
    assert '<dd id="last-poll">not yet: the first runs within 10 minutes</dd>' in body


def test_reconnect_banner_when_spotify_refused_the_token(client, user):
    SpotifyAccount.objects.create(
        user=user,
        spotify_id="alice-sp",
        status=SpotifyAccount.Status.NEEDS_REAUTH,
        status_reason="invalid_grant: Refresh token revoked",
    )
    body = _body(client, user)
    assert 'id="reauth-banner"' in body
    assert "Reconnect Spotify." in body and "invalid_grant: Refresh token revoked" in body
    assert '<dd id="collection-state">Needs reconnecting</dd>' in body


def test_expiry_warning_30_then_7_days_ahead(client, user):
    account = SpotifyAccount.objects.create(
        user=user,
        spotify_id="alice-sp",
        refresh_expires_at=timezone.now() + timedelta(days=40, hours=1),
    )
    assert 'id="expiry-banner"' not in _body(client, user)
    account.refresh_expires_at = timezone.now() + timedelta(days=25, hours=1)
    account.save()
    assert "Spotify access ends in 25 days." in _body(client, user)
    account.refresh_expires_at = timezone.now() + timedelta(days=6, hours=1)
    account.save()
    assert "Spotify access ends in 6 days." in _body(client, user)


def test_buttons_match_the_state(client, user):
    account = SpotifyAccount.objects.create(user=user, spotify_id="alice-sp", refresh_token="r")
    body = _body(client, user)
    assert 'id="poll-now"' in body and 'id="pause"' in body and 'id="resume"' not in body
    account.paused = True
    account.save()
    body = _body(client, user)
    assert 'id="resume"' in body and 'id="poll-now"' not in body and 'id="pause"' not in body
    account.mark_needs_reauth("invalid_grant")
    body = _body(client, user)
    assert 'id="resume"' not in body and 'id="poll-now"' not in body


def test_no_collection_buttons_without_spotify(client, user):
    body = _body(client, user)
    assert 'id="poll-now"' not in body and 'id="pause"' not in body


def test_the_app_wide_spotify_pause_is_shown(client, user):
    from django.core.cache import cache

    from apps.accounts import spotify

    spotify._pause(120, quota=True)
    try:
        body = _body(client, user)
    finally:
        cache.delete(spotify.PAUSE_CACHE_KEY)
    assert "Spotify is out of its daily quota for this service" in body


def test_the_coverage_timeline_shows_months_and_gaps(client, user, make_track, make_play):
    track = make_track()
    make_play(user, track, datetime(2025, 1, 10, tzinfo=UTC))
    make_play(user, track, datetime(2025, 1, 11, tzinfo=UTC))
    make_play(user, track, datetime(2025, 4, 2, tzinfo=UTC))
    client.force_login(user)
    response = client.get(reverse("dashboard"))
    columns = response.context["history"].columns
    assert [(c.label, c.value) for c in columns[:4]] == [
        ("Jan 2025", 2),
        ("Feb 2025", 0),
        ("Mar 2025", 0),
        ("Apr 2025", 1),
    ]
    body = " ".join(response.content.decode().split())
    assert "<title>Feb 2025: no listens</title>" in body
    assert "<title>Jan 2025: 2 listens</title>" in body
    assert "2025-01-12" not in body  # dates are written as "12 Jan 2025"
    assert "12 Jan 2025 to 1 Apr 2025 (80 days)" in body


def test_times_are_shown_in_the_viewers_zone(client, user, make_track, make_play):
    user.timezone = "America/Los_Angeles"
    user.save()
    track = make_track()
    make_play(user, track, datetime(2026, 9, 5, 3, 0, tzinfo=UTC))  # 4 Sep, 20:00 in LA
    make_play(user, track, datetime(2026, 11, 8, 7, 0, tzinfo=UTC))  # 7 Nov, 23:00 in LA
    assert "From 4 Sep 2026 to 7 Nov 2026." in _body(client, user)
    job = ImportJob.objects.create(user=user, original_name="my_spotify_data.zip")
    ImportJob.objects.filter(pk=job.pk).update(created_at=datetime(2026, 11, 8, 7, 30, tzinfo=UTC))
    page = " ".join(client.get(reverse("imports:index")).content.decode().split())
    assert "2026-11-07 23:30 PST" in page
