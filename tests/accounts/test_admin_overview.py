from datetime import UTC, datetime, timedelta

from django.utils import timezone

from apps.accounts.models import SpotifyAccount, User
from apps.history.models import JobRun, Play
from apps.imports.models import ImportJob


def _overview(admin_client):
    body = admin_client.get("/admin/").content.decode()
    return " ".join(body.split())


def test_overview_counts_users_by_status(admin_client, user, other_user):
    carol = User.objects.create_user(username="carol", password="pw-carol-1")
    SpotifyAccount.objects.create(user=user, spotify_id="a")
    SpotifyAccount.objects.create(user=other_user, spotify_id="b", paused=True)
    SpotifyAccount.objects.create(
        user=carol,
        spotify_id="c",
        status=SpotifyAccount.Status.NEEDS_REAUTH,
        status_reason="invalid_grant",
    )
    body = _overview(admin_client)
    # four users: alice, bob, carol and the admin
    assert "<h2>Users (4)</h2>" in body
    assert '<th scope="row">Collecting</th><td class="num">1</td>' in body
    assert '<th scope="row">Paused</th><td class="num">1</td>' in body
    assert '<th scope="row">Needs reconnecting</th><td class="num">1</td>' in body
    assert '<th scope="row">Not connected to Spotify</th><td class="num">1</td>' in body
    assert ">carol</a>: invalid_grant" in body


def test_overview_counts_plays_added_in_the_last_day_by_source(
    admin_client, user, make_track, make_play
):
    track = make_track()
    make_play(user, track, datetime(2020, 1, 1, tzinfo=UTC))
    make_play(user, track, datetime(2020, 1, 2, tzinfo=UTC), source=Play.Source.API)
    old = make_play(user, track, datetime(2020, 1, 3, tzinfo=UTC), source=Play.Source.API)
    Play.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    body = _overview(admin_client)
    assert '<th scope="row">Spotify API</th><td class="num">1</td>' in body
    assert '<th scope="row">Extended streaming history</th><td class="num">1</td>' in body
    assert '<th scope="row">Account data</th><td class="num">0</td>' in body


def test_overview_lists_running_and_failed_jobs_and_expiring_accounts(admin_client, user):
    running = JobRun.objects.create(user=user, type=JobRun.Type.INITIAL_SYNC)
    JobRun.objects.create(
        user=user, type=JobRun.Type.POLL, status=JobRun.Status.FAILED, error="Spotify 503"
    )
    ImportJob.objects.create(
        user=user,
        file="x.zip",
        status=ImportJob.Status.RUNNING,
        records_total=10,
        records_processed=5,
    )
    ImportJob.objects.create(
        user=user, file="y.zip", status=ImportJob.Status.FAILED, error="Not a ZIP file"
    )
    SpotifyAccount.objects.create(
        user=user, spotify_id="a", refresh_expires_at=timezone.now() + timedelta(days=6, hours=1)
    )
    body = _overview(admin_client)
    assert f"Initial sync #{running.pk} (running)</a> for alice" in body
    assert "for alice: Running, 50.0%" in body
    assert "(failed)</a> for alice: Spotify 503" in body
    assert "for alice: Not a ZIP file" in body
    assert ">alice</a>: " in body and "(6 days)" in body
    # the app list is still there below the overview
    assert "Listening history" in body or "app-history" in body
