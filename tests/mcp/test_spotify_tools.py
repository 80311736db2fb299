"""The live Spotify tools and the sync status, through the one Spotify client (faked with
`responses`)."""

from __future__ import annotations

from typing import Any

import pytest
import responses
from django.core.cache import cache

from apps.history.models import SyncCheckpoint
from apps.mcp import tools


def test_spotify_get_top_answers_with_names(spotify: Any, user: Any) -> None:
    result = tools.call("spotify_get_top", caller=user, args={"time_range": "short_term"})
    assert [(i["rank"], i["name"], i["spotify_uri"]) for i in result["items"]] == [
        (1, "Ärtist A", "spotify:artist:aaa"),
        (2, "Band B", "spotify:artist:bbb"),
    ]
    assert result["items"][0]["genres"] == ["indie"]
    request = spotify.calls[0].request
    assert "time_range=short_term" in request.url and "limit=10" in request.url
    assert request.headers["Authorization"] == "Bearer access-1"


def test_spotify_search_skips_null_items(spotify: Any, user: Any) -> None:
    result = tools.call("spotify_search", caller=user, args={"q": "alpha", "limit": 3})
    assert [(i["name"], i["artists"], i["album"]) for i in result["items"]] == [
        ("Alpha Song", ["Ärtist A", "Guest"], "Album A")
    ]
    assert "type=track" in spotify.calls[0].request.url


def test_search_limit_is_at_most_10(user: Any) -> None:
    with pytest.raises(tools.ToolError, match="<= 10"):
        tools.call("spotify_search", caller=user, args={"q": "x", "limit": 11})


def test_spotify_errors_become_tool_errors(spotify: Any, user: Any, settings: Any) -> None:
    spotify.replace(
        responses.GET,
        f"{settings.SPOTIFY_API_BASE_URL}/v1/me/top/artists",
        status=403,
        json={
            "error": {"status": 403, "message": "User not registered in the Developer Dashboard"}
        },
    )
    with pytest.raises(tools.ToolError, match="allow-list"):
        tools.call("spotify_get_top", caller=user, args={})


def test_not_connected_is_a_clear_error(user: Any) -> None:
    with pytest.raises(tools.ToolError, match="not connected"):
        tools.call("spotify_search", caller=user, args={"q": "x"})


def test_sync_status(spotify: Any, user: Any) -> None:
    SyncCheckpoint.objects.create(user=user, initial_sync_stop_reason="empty_page")
    status = tools.call("ops_sync_status", caller=user, args={})
    assert status["connected"] is True and status["status"] == "active"
    assert status["collecting"] is True and status["paused"] is False
    assert status["token_expires_in_days"] == 100
    assert status["initial_sync"]["stop_reason"] == "empty_page"
    assert status["app_rate_limited_until"] is None


def test_sync_status_shows_the_app_wide_pause(user: Any, redis_url: str) -> None:
    from apps.accounts import spotify

    cache.set(spotify.PAUSE_CACHE_KEY, {"until": 4102444800, "quota": True}, timeout=60)
    status = tools.call("ops_sync_status", caller=user, args={})
    assert status["connected"] is False and status["status"] == "not_connected"
    assert status["app_rate_limited_until"].startswith("2100-01-01")
