"""Sign in with Spotify through allauth, against the fake Spotify accounts service."""

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from allauth.socialaccount.models import SocialAccount, SocialToken
from django.db import connection
from django.test import Client

from apps.accounts.models import SpotifyAccount, User
from apps.history.models import SyncCheckpoint

pytestmark = pytest.mark.django_db

HOST = "127.0.0.1:8000"
CALLBACK = f"http://{HOST}/accounts/spotify/login/callback/"


@pytest.fixture
def browser_client():
    return Client(HTTP_HOST=HOST)


def sign_in_with_spotify(client, fake, spotify_user, *, process="login"):
    """Press the button, let the fake Spotify approve, follow it back to the callback."""
    fake.next_login = spotify_user
    start = client.post("/accounts/spotify/login/", {"process": process})
    assert start.status_code == 302, start.content
    authorize = urlsplit(start["Location"])
    assert f"{authorize.scheme}://{authorize.netloc}" == fake.url
    assert authorize.path == "/authorize"
    params = parse_qs(authorize.query)
    approved = requests.get(start["Location"], allow_redirects=False, timeout=5)
    assert approved.status_code == 302
    back = urlsplit(approved.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == CALLBACK
    return params, client.get(back.path, parse_qs(back.query), follow=False)


def test_signing_up_with_spotify_stores_encrypted_tokens_only_in_our_account_row(
    browser_client, fake_spotify, django_capture_on_commit_callbacks
):
    fake_spotify.add_user("alice-sp", "Alice Liddell")

    with django_capture_on_commit_callbacks() as callbacks:
        params, response = sign_in_with_spotify(browser_client, fake_spotify, "alice-sp")

    # PKCE on, no client secret, our scopes, the loopback redirect URI.
    assert params["code_challenge_method"] == ["S256"]
    assert params["client_id"] == ["test-client-id"]
    assert set(params["scope"][0].split()) == {
        "user-read-recently-played",
        "user-top-read",
        "user-read-private",
    }
    assert params["redirect_uri"] == [CALLBACK]
    token_call = next(form for _, path, _, form in fake_spotify.log if path == "/api/token")
    assert "code_verifier" in token_call and "client_secret" not in token_call
    # The profile was fetched with the token in the header, not the query string.
    me_call = next(query for _, path, query, _ in fake_spotify.log if path == "/v1/me")
    assert me_call == {}

    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(socialaccount__uid="alice-sp")
    assert browser_client.get("/").context["user"] == user
    account = SpotifyAccount.objects.get(user=user)
    assert account.display_name == "Alice Liddell"
    issued_access = next(t for t, u in fake_spotify.access_tokens.items() if u == "alice-sp")
    assert account.access_token.reveal() == issued_access
    assert fake_spotify.refresh_tokens[account.refresh_token.reveal()] == "alice-sp"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT access_token, refresh_token FROM accounts_spotifyaccount WHERE id = %s",
            [account.pk],
        )
        raw = cursor.fetchone()
    assert issued_access not in raw[0] and raw[1].startswith("gAAAA")
    assert SocialToken.objects.count() == 0
    assert SocialAccount.objects.get(user=user).provider == "spotify"
    assert SyncCheckpoint.objects.filter(user=user).exists()
    queued = [cb for cb in callbacks if "initial_sync" in cb.__code__.co_names]
    assert len(queued) == 1


def test_connecting_spotify_to_an_existing_local_account(
    browser_client, user, fake_spotify, django_capture_on_commit_callbacks
):
    fake_spotify.add_user("alice-sp")
    browser_client.force_login(user)

    with django_capture_on_commit_callbacks() as callbacks:
        _, response = sign_in_with_spotify(
            browser_client, fake_spotify, "alice-sp", process="connect"
        )

    assert response.status_code == 302
    assert User.objects.count() == 1
    assert SocialAccount.objects.get(user=user).uid == "alice-sp"
    account = SpotifyAccount.objects.get(user=user)
    assert account.spotify_id == "alice-sp"
    assert account.refresh_token is not None
    assert SocialToken.objects.count() == 0
    assert any("initial_sync" in cb.__code__.co_names for cb in callbacks)


def test_signing_in_again_replaces_the_tokens_and_reconnects(
    browser_client, fake_spotify, django_capture_on_commit_callbacks
):
    fake_spotify.add_user("alice-sp")
    sign_in_with_spotify(browser_client, fake_spotify, "alice-sp")
    account = SpotifyAccount.objects.get()
    first_refresh = account.refresh_token.reveal()
    account.mark_needs_reauth("Spotify no longer accepts this app's authorization")
    browser_client.logout()

    with django_capture_on_commit_callbacks() as callbacks:
        sign_in_with_spotify(browser_client, fake_spotify, "alice-sp")

    account.refresh_from_db()
    assert User.objects.count() == 1
    assert account.status == SpotifyAccount.Status.ACTIVE and account.status_reason == ""
    assert account.refresh_token.reveal() != first_refresh
    assert any("initial_sync" in cb.__code__.co_names for cb in callbacks)


def test_the_home_page_offers_sign_in_with_spotify(browser_client, fake_spotify):
    page = browser_client.get("/").content.decode()
    assert "Sign in with Spotify" in page
    assert 'action="/accounts/spotify/login/"' in page


def test_the_sign_in_page_offers_spotify(browser_client, fake_spotify):
    page = browser_client.get("/accounts/login/").content.decode()
    assert 'href="/accounts/spotify/login/?process=login"' in page


def test_without_a_client_id_spotify_is_not_offered(browser_client, settings):
    settings.SPOTIFY_CLIENT_ID = ""
    assert "/accounts/spotify/login/" not in browser_client.get("/accounts/login/").content.decode()
    page = browser_client.get("/").content.decode()
    assert "Sign in with Spotify" not in page
    assert "Spotify sign-in is not set up on this server yet" in page


def test_a_refused_authorization_signs_nobody_in(browser_client, fake_spotify):
    _, response = sign_in_with_spotify(browser_client, fake_spotify, "nobody")

    assert User.objects.count() == 0
    assert SpotifyAccount.objects.count() == 0
    assert response["Location"] == "/accounts/3rdparty/login/cancelled/"
