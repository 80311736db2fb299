"""The dashboard and settings buttons: POST only, CSRF, the viewer's own account, real effects."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import SpotifyAccount


@pytest.fixture
def broker(redis_url):
    """The real broker's queue: what the buttons queued, as (task name, args)."""
    import json

    import redis

    from config.celery import app

    app.control.purge()
    connection = redis.Redis.from_url(redis_url)

    def queued() -> list[tuple[str, str]]:
        messages = [json.loads(raw) for raw in connection.lrange("celery", 0, -1)]
        return [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages]

    yield queued
    app.control.purge()


@pytest.fixture
def accounts(user, other_user):
    mine = SpotifyAccount.objects.create(user=user, spotify_id="alice-sp", refresh_token="r-a")
    theirs = SpotifyAccount.objects.create(
        user=other_user, spotify_id="bob-sp", refresh_token="r-b"
    )
    return mine, theirs


def test_pause_then_resume_changes_only_the_viewers_account(
    client, user, accounts, django_capture_on_commit_callbacks, broker
):
    mine, theirs = accounts
    client.force_login(user)
    response = client.post(reverse("pause_collection"), {"next": "dashboard"}, follow=True)
    assert "Collection is paused." in response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("dashboard")
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.paused, theirs.paused) == (True, False)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("resume_collection"), follow=True)
    mine.refresh_from_db()
    assert mine.paused is False
    assert broker() == [("apps.history.tasks.poll_user", f"({user.pk},)")]
    assert "Collection resumed; a poll is queued." in response.content.decode()


def test_poll_now_queues_a_poll_of_the_viewer(
    client, user, accounts, django_capture_on_commit_callbacks, broker
):
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("poll_now"), follow=True)
    assert broker() == [("apps.history.tasks.poll_user", f"({user.pk},)")]
    assert "A poll is queued" in response.content.decode()


def test_poll_now_while_paused_says_why_not(client, user, accounts):
    mine, _ = accounts
    mine.paused = True
    mine.save()
    client.force_login(user)
    response = client.post(reverse("poll_now"), follow=True)
    assert "Collection is paused; resume it first." in response.content.decode()


def test_poll_now_without_spotify_says_to_connect(client, user):
    client.force_login(user)
    response = client.post(reverse("poll_now"), follow=True)
    assert "Spotify is not connected; connect it first." in response.content.decode()


def test_disconnect_deletes_the_viewers_tokens_only(client, user, accounts):
    mine, theirs = accounts
    client.force_login(user)
    response = client.post(reverse("disconnect_spotify"), {"next": "settings"}, follow=True)
    assert "Spotify is disconnected and its tokens are deleted." in response.content.decode()
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.refresh_token is None and mine.access_token is None
    assert mine.status == SpotifyAccount.Status.REVOKED
    assert theirs.refresh_token.reveal() == "r-b"
    body = client.get(reverse("settings")).content.decode()
    assert 'id="disconnect"' not in body


@pytest.mark.parametrize(
    "name", ["poll_now", "pause_collection", "resume_collection", "disconnect_spotify"]
)
def test_buttons_are_post_only_and_need_csrf(user, accounts, name):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get(reverse(name)).status_code == 405
    assert client.post(reverse(name)).status_code == 403
    mine, _ = accounts
    mine.refresh_from_db()
    assert (mine.paused, mine.refresh_token.reveal()) == (False, "r-a")
