"""Connect, reconnect, disconnect, pause and resume."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import SpotifyAccount
from apps.accounts.spotify import SpotifyError, SpotifyNotConnected
from apps.history import collection
from apps.history.models import JobRun, SyncCheckpoint

pytestmark = pytest.mark.django_db

PROFILE = {"id": "alice-sp", "display_name": "Alice"}


def raw_column(pk, column):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM accounts_spotifyaccount WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def test_connecting_stores_tokens_encrypted_and_queues_the_initial_sync(
    user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        account = services.connect_spotify(
            user=user, profile=PROFILE, access_token="acc-123", refresh_token="ref-456"
        )

    assert account.spotify_id == "alice-sp"
    assert account.display_name == "Alice"
    assert account.refresh_token.reveal() == "ref-456"
    stored = raw_column(account.pk, "refresh_token")
    assert "ref-456" not in stored and stored.startswith("gAAAA")
    assert account.refresh_expires_at is not None
    assert account.refresh_expires_at - account.authorized_at == timedelta(days=182)
    assert SyncCheckpoint.objects.filter(user=user).exists()
    assert len(callbacks) == 1
    assert "initial_sync" in repr(callbacks[0].__code__.co_names)


def test_the_profile_account_id_wins_over_id(user):
    account = services.connect_spotify(
        user=user,
        profile={"id": "legacy", "account_id": "acct-9"},
        access_token="a",
        refresh_token="r",
    )
    assert (account.spotify_id, account.account_id) == ("acct-9", "acct-9")


def test_reconnecting_replaces_the_tokens_and_clears_needs_reauth(user):
    account = services.connect_spotify(
        user=user, profile=PROFILE, access_token="a1", refresh_token="r1"
    )
    account.authorized_at = timezone.now() - timedelta(days=170)
    account.expiry_warned_days = 30
    account.save()
    account.mark_needs_reauth("Spotify no longer accepts this app's authorization")

    services.connect_spotify(user=user, profile=PROFILE, access_token="a2", refresh_token="r2")

    account.refresh_from_db()
    assert account.status == SpotifyAccount.Status.ACTIVE
    assert not account.needs_reauth and account.status_reason == ""
    assert account.refresh_token.reveal() == "r2"
    assert account.expiry_warned_days is None
    assert account.authorized_at > timezone.now() - timedelta(minutes=1)


def test_a_spotify_account_connected_to_someone_else_is_refused(user, other_user):
    services.connect_spotify(user=user, profile=PROFILE, access_token="a", refresh_token="r")
    with pytest.raises(SpotifyError, match="already connected to another user"):
        services.connect_spotify(
            user=other_user, profile=PROFILE, access_token="b", refresh_token="s"
        )


def test_disconnecting_deletes_the_tokens_and_stops_polling(user, connect_fake):
    connect_fake(user)

    services.disconnect_spotify(user=user)

    account = SpotifyAccount.objects.get(user=user)
    assert account.refresh_token is None and account.access_token is None
    assert raw_column(account.pk, "refresh_token") is None
    assert account.status == SpotifyAccount.Status.REVOKED
    assert collection.due_user_ids() == []
    assert collection.poll_user(user=user).status == JobRun.Status.SKIPPED
    with pytest.raises(SpotifyNotConnected):
        collection.request_poll(user=user)


def test_pause_skips_the_user_and_resume_polls_again(
    user, connect_fake, django_capture_on_commit_callbacks
):
    connect_fake(user)
    assert collection.due_user_ids() == [user.pk]

    account = services.pause_collection(user=user)

    assert account.paused
    assert collection.due_user_ids() == []
    run = collection.poll_user(user=user)
    assert run.status == JobRun.Status.SKIPPED
    with pytest.raises(SpotifyError, match="paused"):
        collection.request_poll(user=user)

    with django_capture_on_commit_callbacks() as callbacks:
        account = services.resume_collection(user=user)
    assert not account.paused
    assert collection.due_user_ids() == [user.pk]
    assert len(callbacks) == 1


def test_pausing_without_spotify_says_to_connect(user):
    with pytest.raises(SpotifyNotConnected, match="connect it first"):
        services.pause_collection(user=user)
