"""The admin's collection actions, columns and filters."""

import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.accounts import spotify
from apps.accounts.models import SpotifyAccount, User
from apps.history.models import SyncCheckpoint

pytestmark = pytest.mark.django_db

USERS = "/admin/accounts/user/"
ACCOUNTS = "/admin/accounts/spotifyaccount/"


def act(client, url, action, pks):
    return client.post(
        url, {"action": action, "_selected_action": [str(pk) for pk in pks]}, follow=True
    )


def texts(response):
    return [str(m) for m in response.context["messages"]]


def test_pause_and_resume_from_the_user_list(
    admin_client, user, connect_fake, django_capture_on_commit_callbacks
):
    connect_fake(user)

    response = act(admin_client, USERS, "pause_collection", [user.pk])
    assert "Paused 1." in texts(response)
    assert SpotifyAccount.objects.get(user=user).paused

    with django_capture_on_commit_callbacks() as callbacks:
        response = act(admin_client, USERS, "resume_collection", [user.pk])
    assert "Resumed 1; polls queued." in texts(response)
    assert not SpotifyAccount.objects.get(user=user).paused
    assert len(callbacks) == 1


def test_poll_now_and_initial_sync_queue_work_and_report_refusals(
    admin_client, user, other_user, connect_fake, django_capture_on_commit_callbacks
):
    account = connect_fake(user)
    with django_capture_on_commit_callbacks() as callbacks:
        response = act(admin_client, ACCOUNTS, "poll_now", [account.pk])
    assert texts(response) == ["Queued 1 polls."]
    assert "poll_user" in callbacks[0].__code__.co_names

    with django_capture_on_commit_callbacks() as callbacks:
        response = act(admin_client, USERS, "run_initial_sync", [user.pk, other_user.pk])
    assert "Queued 1 initial syncs." in texts(response)
    assert "bob: Spotify is not connected; connect it first." in texts(response)
    assert len(callbacks) == 1 and "initial_sync" in callbacks[0].__code__.co_names


def test_the_lists_show_status_last_poll_plays_and_token_expiry(
    admin_client, user, connect_fake, make_track, make_play
):
    connect_fake(user, refresh_expires_at=timezone.now() + timedelta(days=12, hours=2))
    SyncCheckpoint.objects.create(user=user, last_poll_at=timezone.now())
    track = make_track()
    for i in range(3):
        make_play(user, track, timezone.now() - timedelta(hours=i))

    for url in (USERS, ACCOUNTS):
        page = admin_client.get(url, {"q": "alice"}).content.decode()
        assert "12 days" in page
        assert '<td class="field-plays">3</td>' in page
        assert "Active" in page
        assert "field-last_poll" in page and 'field-last_poll">-' not in page


def test_the_needs_reauth_filter_finds_accounts_to_reconnect(
    admin_client, user, other_user, connect_fake
):
    connect_fake(user)
    connect_fake(other_user).mark_needs_reauth("Reconnect Spotify.")

    for url in (USERS, ACCOUNTS):
        response = admin_client.get(url, {"reauth": "needed"})
        shown = {str(obj) for obj in response.context["cl"].result_list}
        assert len(shown) == 1
        assert "bob" in shown.pop()


def test_the_app_wide_pause_shows_in_the_admin(admin_client):
    cache.set(spotify.PAUSE_CACHE_KEY, {"until": time.time() + 3600, "quota": True}, 3700)
    try:
        response = admin_client.get(ACCOUNTS)
    finally:
        cache.delete(spotify.PAUSE_CACHE_KEY)
    assert any("daily Spotify quota" in m for m in texts(response))


def test_no_token_appears_on_the_account_page(admin_client, user, connect_fake):
    account = connect_fake(user)
    page = admin_client.get(f"{ACCOUNTS}{account.pk}/change/").content.decode()
    assert account.access_token.reveal() not in page
    assert account.refresh_token.reveal() not in page
    assert account.refresh_token.ciphertext not in page
    assert User.objects.count() == 2  # alice and the admin


def test_a_zone_changed_in_the_admin_queues_the_biggest_days_recount(
    admin_client, user, django_capture_on_commit_callbacks
):
    joined = user.date_joined
    data = {
        "username": user.username,
        "email": user.email,
        "is_active": "on",
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
        "timezone": "Asia/Tokyo",
    }
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(f"{USERS}{user.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert user.timezone == "Asia/Tokyo"
    assert [c.__code__.co_names for c in callbacks] == [("refresh_best_days", "delay")]

    # Another change than the zone queues nothing.
    with django_capture_on_commit_callbacks() as callbacks:
        admin_client.post(f"{USERS}{user.pk}/change/", {**data, "email": "a@example.org"})
    user.refresh_from_db()
    assert (user.email, callbacks) == ("a@example.org", [])
