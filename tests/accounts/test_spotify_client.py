"""The Spotify client's behaviours, against Spotify faked at the HTTP layer with `responses`."""

import time
from datetime import timedelta

import pytest
import responses
from django.core.cache import cache
from django.utils import timezone
from responses import matchers

from apps.accounts import spotify
from apps.accounts.models import SpotifyAccount
from tests.conftest import SPOTIFY_ACCOUNTS as ACCOUNTS
from tests.conftest import SPOTIFY_API as API

RECENT = f"{API}/v1/me/player/recently-played"
TOKEN = f"{ACCOUNTS}/api/token"
EMPTY: dict[str, object] = {"items": [], "next": None, "cursors": None, "limit": 50}


pytestmark = pytest.mark.usefixtures("responses_spotify")


def bearer(token):
    return matchers.header_matcher({"Authorization": f"Bearer {token}"})


@responses.activate
def test_an_expired_access_token_is_refreshed_first_and_the_old_refresh_token_kept(account):
    account.access_expires_at = timezone.now() - timedelta(minutes=1)
    account.save()
    refresh = responses.post(
        TOKEN,
        json={"access_token": "access-2", "expires_in": 3600, "token_type": "Bearer"},
        match=[
            matchers.urlencoded_params_matcher(
                {"grant_type": "refresh_token", "refresh_token": "refresh-1", "client_id": "cid"}
            )
        ],
    )
    responses.get(RECENT, json=EMPTY, match=[bearer("access-2")])

    assert spotify.recently_played(account=account) == EMPTY

    assert refresh.call_count == 1
    account.refresh_from_db()
    assert account.access_token.reveal() == "access-2"
    assert account.refresh_token.reveal() == "refresh-1"
    assert account.access_expires_at > timezone.now() + timedelta(minutes=59)


@responses.activate
def test_a_refresh_that_brings_a_new_refresh_token_stores_it(account):
    account.access_expires_at = timezone.now()
    account.save()
    responses.post(
        TOKEN, json={"access_token": "access-2", "expires_in": 3600, "refresh_token": "refresh-2"}
    )
    responses.get(RECENT, json=EMPTY)

    spotify.recently_played(account=account)

    account.refresh_from_db()
    assert account.refresh_token.reveal() == "refresh-2"


@responses.activate
def test_a_client_secret_is_sent_with_basic_auth(account, settings):
    settings.SPOTIFY_CLIENT_SECRET = "shh"
    account.access_expires_at = timezone.now()
    account.save()
    refresh = responses.post(
        TOKEN,
        json={"access_token": "access-2", "expires_in": 3600},
        match=[matchers.header_matcher({"Authorization": "Basic Y2lkOnNoaA=="})],
    )
    responses.get(RECENT, json=EMPTY)

    spotify.recently_played(account=account)

    assert refresh.call_count == 1
    assert "client_id" not in refresh.calls[0].request.body


@responses.activate
def test_a_401_refreshes_once_and_retries_once(account):
    first = responses.get(
        RECENT,
        status=401,
        json={"error": {"status": 401, "message": "The access token expired"}},
        match=[bearer("access-1")],
    )
    responses.post(TOKEN, json={"access_token": "access-2", "expires_in": 3600})
    second = responses.get(RECENT, json=EMPTY, match=[bearer("access-2")])

    assert spotify.recently_played(account=account) == EMPTY
    assert (first.call_count, second.call_count) == (1, 1)


@responses.activate
def test_a_second_401_is_an_error_not_a_loop(account):
    responses.get(RECENT, status=401, json={"error": {"status": 401, "message": "Bad token"}})
    refresh = responses.post(TOKEN, json={"access_token": "access-2", "expires_in": 3600})

    with pytest.raises(spotify.SpotifyError, match="Reconnect Spotify"):
        spotify.recently_played(account=account)
    assert refresh.call_count == 1
    assert len(responses.calls) == 3


@responses.activate
def test_invalid_grant_marks_the_account_needs_reauth_and_is_never_retried(account):
    account.access_expires_at = timezone.now()
    account.save()
    refresh = responses.post(
        TOKEN,
        status=400,
        json={"error": "invalid_grant", "error_description": "Refresh token revoked"},
    )

    with pytest.raises(spotify.SpotifyReauthRequired, match="Reconnect Spotify"):
        spotify.recently_played(account=account)
    account.refresh_from_db()
    assert account.needs_reauth
    assert "Reconnect Spotify" in account.status_reason
    assert account.access_token is None

    with pytest.raises(spotify.SpotifyReauthRequired):
        spotify.recently_played(account=account)
    assert refresh.call_count == 1


@responses.activate
def test_5xx_is_retried_with_backoff_within_a_bound(account):
    failing = responses.get(RECENT, status=503, body="upstream")
    started = time.monotonic()

    with pytest.raises(spotify.SpotifyUnavailable, match="HTTP 503 after 3 attempts"):
        spotify.recently_played(account=account)

    elapsed = time.monotonic() - started
    assert failing.call_count == spotify.MAX_ATTEMPTS == 3
    # Two sleeps of 0.25 s and 0.5 s, each jittered to between 50% and 150%.
    assert 0.3 <= elapsed < 1.5


@responses.activate
def test_5xx_then_success_returns_the_page(account):
    responses.get(RECENT, status=502)
    responses.get(RECENT, json=EMPTY)

    assert spotify.recently_played(account=account) == EMPTY
    assert len(responses.calls) == 2


@responses.activate
def test_a_429_pauses_every_call_app_wide_until_retry_after(account, other_user):
    limited = responses.get(
        RECENT, status=429, headers={"Retry-After": "120"}, json={"error": {"status": 429}}
    )

    with pytest.raises(spotify.SpotifyRateLimited) as caught:
        spotify.recently_played(account=account)

    assert not caught.value.quota
    assert 118 <= caught.value.retry_after <= 120
    until = spotify.rate_limit_pause()
    assert until is not None
    assert timedelta(seconds=118) < until - timezone.now() <= timedelta(seconds=121)
    # The pause is in the shared cache: another account makes no request while it lasts.
    other = SpotifyAccount.objects.create(
        user=other_user,
        spotify_id="bob-sp",
        access_token="b",
        refresh_token="rb",
        access_expires_at=timezone.now() + timedelta(hours=1),
    )
    with pytest.raises(spotify.SpotifyRateLimited, match="paused until"):
        spotify.get_top(account=other, kind="artists", time_range="short_term", limit=5)
    assert limited.call_count == 1
    assert len(responses.calls) == 1
    assert cache.get(spotify.PAUSE_CACHE_KEY)["until"] == pytest.approx(until.timestamp())


@responses.activate
def test_a_quota_429_is_told_apart_and_paused_for_its_retry_after(account):
    responses.get(
        RECENT,
        status=429,
        headers={"Retry-After": "7200"},
        json={"error": {"status": 429, "message": "Quota exceeded"}, "reason": "QUOTA_EXCEEDED"},
    )

    with pytest.raises(spotify.SpotifyRateLimited, match="daily Spotify quota") as caught:
        spotify.recently_played(account=account)

    assert caught.value.quota
    status = spotify.rate_limit_status()
    assert status is not None
    assert status["quota"] is True
    assert 7190 < status["seconds_left"] <= 7200


def test_no_pause_means_none():
    assert spotify.rate_limit_pause() is None
    assert spotify.rate_limit_status() is None


@responses.activate
def test_a_403_not_registered_says_what_to_do(account):
    responses.get(
        RECENT,
        status=403,
        json={
            "error": {"status": 403, "message": "User not registered in the Developer Dashboard"}
        },
    )

    with pytest.raises(spotify.SpotifyNotRegistered) as caught:
        spotify.recently_played(account=account)

    message = str(caught.value)
    assert "allow-list" in message and "User Management" in message
    account.refresh_from_db()
    assert account.status_reason == message
    assert account.status == SpotifyAccount.Status.ACTIVE


@responses.activate
def test_a_plain_text_403_not_registered_is_recognised_too(account):
    responses.get(RECENT, status=403, body="User not registered in the Developer Dashboard")

    with pytest.raises(spotify.SpotifyNotRegistered):
        spotify.recently_played(account=account)


@responses.activate
def test_get_top_and_search_call_spotify_with_the_right_parameters(account):
    top = responses.get(
        f"{API}/v1/me/top/tracks",
        json={"items": [{"name": "Song"}], "total": 1},
        match=[matchers.query_param_matcher({"time_range": "long_term", "limit": "5"})],
    )
    found = responses.get(
        f"{API}/v1/search",
        json={"tracks": {"items": [{"name": "Karma Police"}]}},
        match=[matchers.query_param_matcher({"q": "karma", "type": "track,artist", "limit": "3"})],
    )

    assert spotify.get_top(account=account, kind="tracks", time_range="long_term", limit=5)[
        "items"
    ] == [{"name": "Song"}]
    result = spotify.search(account=account, q="karma", types=["track", "artist"], limit=3)
    assert result["tracks"]["items"][0]["name"] == "Karma Police"
    assert (top.call_count, found.call_count) == (1, 1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda a: spotify.get_top(account=a, kind="albums", time_range="short_term", limit=5),
            "kind",
        ),
        (
            lambda a: spotify.get_top(account=a, kind="tracks", time_range="forever", limit=5),
            "time_range",
        ),
        (
            lambda a: spotify.get_top(account=a, kind="tracks", time_range="short_term", limit=51),
            "limit",
        ),
        (
            lambda a: spotify.search(account=a, q="x", types=["track"], limit=11),
            "at most|between 1 and 10",
        ),
        (lambda a: spotify.search(account=a, q=" ", types=["track"], limit=5), "search for"),
        (lambda a: spotify.search(account=a, q="x", types=["song"], limit=5), "types"),
    ],
)
def test_bad_tool_arguments_are_refused_before_calling_spotify(account, call, message):
    with responses.RequestsMock() as mock, pytest.raises(spotify.SpotifyError, match=message):
        call(account)
    assert len(mock.calls) == 0


def test_a_disconnected_account_is_told_to_connect(account):
    account.refresh_token = None
    account.save()
    with pytest.raises(spotify.SpotifyNotConnected, match="connect it"):
        spotify.get_top(account=account, kind="tracks", time_range="short_term", limit=5)


@responses.activate
def test_tokens_never_reach_the_logs_or_the_error(account, caplog):
    responses.get(RECENT, status=401, json={"error": {"status": 401}})
    responses.post(TOKEN, status=400, json={"error": "invalid_grant"})

    with pytest.raises(spotify.SpotifyError) as caught:
        spotify.recently_played(account=account)

    for secret in ("access-1", "refresh-1"):
        assert secret not in caplog.text
        assert secret not in str(caught.value)


def test_account_for_finds_the_account_or_says_what_to_do(user, other_user, account):
    assert spotify.account_for(user) == account
    with pytest.raises(spotify.SpotifyNotConnected, match="sign in with Spotify"):
        spotify.account_for(other_user)
    account.mark_needs_reauth("Reconnect Spotify to resume collecting plays.")
    with pytest.raises(spotify.SpotifyReauthRequired, match="Reconnect Spotify"):
        spotify.account_for(user)
