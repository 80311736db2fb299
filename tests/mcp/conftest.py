from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.mcp.services import create_token
from apps.music.models import Album, Source, Track

# One example call of every tool, the same on every surface.
EXAMPLE_ARGS: dict[str, dict[str, Any]] = {
    "history_taste_summary": {"days": 30},
    "history_top_artists": {"days": 30, "limit": 5},
    "history_top_tracks": {"days": 0, "limit": 50},
    "history_top_albums": {"days": 30},
    "history_listening_heatmap": {"days": 30, "tz": "Europe/Paris"},
    "history_repeat_rate": {"days": 30},
    "history_coverage": {"days": 30},
    "history_top_podcasts": {"days": 30},
    "history_entity_stats": {"query": "artist a"},
    "history_compare_periods": {
        "a_start": "2026-01-01",
        "a_end": "2026-01-31",
        "b_start": "2026-02-01",
        "b_end": "2026-12-31",
    },
    "history_timeline": {"days": 14, "granularity": "day"},
    "ops_latest_job_runs": {"limit": 5},
    "ops_latest_import_jobs": {"limit": 5},
    "ops_sync_status": {},
}


@pytest.fixture(autouse=True)
def _clear_throttle_counts() -> None:
    cache.clear()


@pytest.fixture
def listening(user: Any, other_user: Any, make_track: Any, make_play: Any) -> Any:
    """A few days of plays for alice (and one for bob, never seen by alice's tools)."""
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    a1 = make_track("Alpha Song", "Ärtist A", "Album A")
    b1 = make_track("Gamma", "Band B", "Album B")
    show = Album.objects.create(name="Show P", name_key="show p")
    episode = Track.objects.create(
        uri="spotify:episode:p1",
        kind=Track.Kind.EPISODE,
        name="Ep 1",
        name_key="ep 1",
        album=show,
        duration_ms=1_800_000,
        first_source=Source.EXPORT_EXTENDED,
    )
    for days_ago in range(1, 6):
        make_play(user, a1, now - timedelta(days=days_ago, hours=1), ms_played=240_000)
        make_play(user, b1, now - timedelta(days=days_ago, hours=3), ms_played=None, source="api")
    make_play(user, b1, now - timedelta(days=2, hours=5), ms_played=5_000)
    make_play(user, episode, now - timedelta(days=1, hours=6), ms_played=1_200_000)
    make_play(user, a1, datetime(2025, 6, 1, 12, tzinfo=UTC))
    make_play(other_user, a1, now - timedelta(days=1))
    return user


@pytest.fixture
def token(user: Any) -> str:
    return create_token(user=user, name="test")[1]


TOP_ARTISTS = {
    "items": [
        {
            "name": "Ärtist A",
            "type": "artist",
            "uri": "spotify:artist:aaa",
            "genres": ["indie"],
            "popularity": 61,
            "external_urls": {"spotify": "https://open.spotify.com/artist/aaa"},
        },
        {"name": "Band B", "type": "artist", "uri": "spotify:artist:bbb", "genres": []},
    ]
}
SEARCH_TRACKS = {
    "tracks": {
        "items": [
            {
                "name": "Alpha Song",
                "type": "track",
                "uri": "spotify:track:alpha",
                "artists": [{"name": "Ärtist A"}, {"name": "Guest"}],
                "album": {"name": "Album A"},
                "popularity": 40,
            },
            None,
        ]
    }
}


@pytest.fixture
def spotify(user: Any, settings: Any) -> Any:
    """Alice's Spotify connection, and a fake Spotify Web API (the `responses` library)."""
    import responses

    from apps.accounts.models import SpotifyAccount

    SpotifyAccount.objects.create(
        user=user,
        spotify_id="alice-sp",
        display_name="Alice",
        access_token="access-1",
        refresh_token="refresh-1",
        access_expires_at=timezone.now() + timedelta(hours=1),
        refresh_expires_at=timezone.now() + timedelta(days=100, hours=1),
    )
    base = settings.SPOTIFY_API_BASE_URL
    with responses.RequestsMock(assert_all_requests_are_fired=False) as fake:
        fake.get(f"{base}/v1/me/top/artists", json=TOP_ARTISTS)
        fake.get(f"{base}/v1/search", json=SEARCH_TRACKS)
        yield fake


EXAMPLE_ARGS |= {
    "spotify_get_top": {"entity": "artists", "time_range": "short_term", "limit": 5},
    "spotify_search": {"q": "alpha", "type": "track", "limit": 3},
}
