"""The initial sync's paging and each of its stop conditions, with Spotify faked by `responses`."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.utils import timezone

from apps.accounts import spotify
from apps.history import collection
from apps.history.models import JobRun, Play, SyncCheckpoint
from tests.conftest import SPOTIFY_API as API

pytestmark = pytest.mark.django_db

RECENT = f"{API}/v1/me/player/recently-played"


@pytest.fixture(autouse=True)
def sync_limits(responses_spotify, settings):
    settings.INITIAL_SYNC_MAX_DAYS = 30
    settings.INITIAL_SYNC_MAX_REQUESTS = 200


def item(when, n):
    return {
        "track": {
            "type": "track",
            "id": f"t{n}",
            "uri": f"spotify:track:t{n}",
            "name": f"Song {n}",
            "duration_ms": 180000,
            "artists": [{"id": "a1", "name": "Artist"}],
            "album": {"id": "al1", "name": "Album"},
        },
        "played_at": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "context": None,
    }


def serve(history):
    """Serve `history` (newest first) the way Spotify pages it with `before`."""

    def callback(request):
        query = parse_qs(urlsplit(request.url).query)
        limit = int(query["limit"][0])
        before = int(query["before"][0]) if "before" in query else None
        older = [p for p in history if before is None or p[0].timestamp() * 1000 < before]
        page = older[:limit]
        if not page:
            return (200, {}, '{"items": [], "next": null, "cursors": null, "limit": 50}')
        import json

        body = {
            "items": [item(when, n) for when, n in page],
            "next": f"{RECENT}?before={int(page[-1][0].timestamp() * 1000)}&limit={limit}",
            "cursors": {"before": str(int(page[-1][0].timestamp() * 1000))},
        }
        return (200, {}, json.dumps(body))

    responses.add_callback(responses.GET, RECENT, callback=callback)


def query_of(call: object) -> dict[str, list[str]]:
    return parse_qs(urlsplit(str(call.request.url)).query)  # type: ignore[attr-defined]


def plays_every(hours, count, *, start=None):
    start = start or timezone.now().replace(microsecond=306000) - timedelta(minutes=5)
    return [(start - timedelta(hours=hours * i), i) for i in range(count)]


@responses.activate
def test_it_pages_backwards_with_before_until_an_empty_page(user, account):
    serve(plays_every(1, 120))

    run = collection.initial_sync(user=user)

    assert run.status == JobRun.Status.SUCCEEDED
    assert run.counts["stop_reason"] == "empty_page"
    assert run.counts["requests"] == 4  # 50 + 50 + 20 + the empty page
    assert run.counts["added"] == 120
    queries = [query_of(c) for c in responses.calls]
    assert "before" not in queries[0]
    assert all(q["limit"] == ["50"] for q in queries)
    assert [int(q["before"][0]) for q in queries[1:]] == sorted(
        (int(q["before"][0]) for q in queries[1:]), reverse=True
    )
    checkpoint = SyncCheckpoint.objects.get(user=user)
    assert checkpoint.initial_sync_stop_reason == "empty_page"
    assert (
        checkpoint.earliest_played_at == Play.objects.for_user(user).earliest("played_at").played_at
    )
    assert checkpoint.newest_played_at == Play.objects.for_user(user).latest("played_at").played_at
    assert checkpoint.initial_sync_completed_at is not None


@responses.activate
def test_it_stops_at_initial_sync_max_days(user, account, settings):
    settings.INITIAL_SYNC_MAX_DAYS = 2
    serve(plays_every(1, 500))  # 500 hours of plays, one an hour

    run = collection.initial_sync(user=user)

    assert run.counts["stop_reason"] == "max_days"
    assert run.counts["requests"] == 1  # the first 50 hours already reach back 2 days
    earliest = SyncCheckpoint.objects.get(user=user).earliest_played_at
    assert earliest is not None
    assert timezone.now() - earliest > timedelta(days=2)
    assert timezone.now() - earliest < timedelta(days=2, hours=3)


@responses.activate
def test_it_stops_at_initial_sync_max_requests(user, account, settings):
    settings.INITIAL_SYNC_MAX_REQUESTS = 3
    serve(plays_every(0.1, 1000))

    run = collection.initial_sync(user=user)

    assert run.counts["stop_reason"] == "max_requests"
    assert len(responses.calls) == 3
    assert run.counts["added"] == 150


@responses.activate
def test_it_stops_when_the_oldest_play_does_not_move(user, account):
    stuck = {
        "items": [item(timezone.now() - timedelta(minutes=m), m) for m in range(3)],
        "next": RECENT,
    }
    responses.get(RECENT, json=stuck)

    run = collection.initial_sync(user=user)

    assert run.counts["stop_reason"] == "no_progress"
    assert len(responses.calls) == 2
    assert Play.objects.for_user(user).count() == 3


@responses.activate
def test_it_waits_out_one_429_and_stops_on_repeated_429s(user, account):
    limited = {"error": {"status": 429, "message": "API rate limit exceeded"}}
    responses.get(RECENT, status=429, headers={"Retry-After": "0"}, json=limited)
    responses.get(RECENT, json={"items": [item(timezone.now(), 1)], "next": None})
    responses.get(RECENT, status=429, headers={"Retry-After": "0"}, json=limited)
    responses.get(RECENT, status=429, headers={"Retry-After": "0"}, json=limited)

    run = collection.initial_sync(user=user)

    assert run.counts["stop_reason"] == "rate_limited"
    assert run.counts["rate_limited"] == 3
    assert run.counts["added"] == 1
    assert SyncCheckpoint.objects.get(user=user).initial_sync_stop_reason == "rate_limited"


@responses.activate
def test_a_quota_429_stops_it_at_once(user, account):
    responses.get(
        RECENT,
        status=429,
        headers={"Retry-After": "3600"},
        json={"error": {"status": 429}, "reason": "QUOTA_EXCEEDED"},
    )

    run = collection.initial_sync(user=user)

    assert run.counts["stop_reason"] == "rate_limited"
    assert len(responses.calls) == 1


@responses.activate
def test_an_account_error_stops_it_and_is_recorded(user, account):
    responses.get(
        RECENT,
        status=403,
        json={
            "error": {"status": 403, "message": "User not registered in the Developer Dashboard"}
        },
    )

    with pytest.raises(spotify.SpotifyNotRegistered):
        collection.initial_sync(user=user)

    run = JobRun.objects.get(user=user, type=JobRun.Type.INITIAL_SYNC)
    assert run.status == JobRun.Status.FAILED
    assert run.counts["stop_reason"] == "error"
    assert "allow-list" in run.error


def test_initial_sync_enabled_off_turns_it_off(user, account, settings):
    settings.INITIAL_SYNC_ENABLED = False

    run = collection.initial_sync(user=user)

    assert run.status == JobRun.Status.SKIPPED
    assert "INITIAL_SYNC_ENABLED" in run.counts["skipped"]


@responses.activate
def test_the_next_poll_asks_after_the_newest_synced_play(user, account):
    newest = datetime(2026, 11, 25, 9, 30, 12, 345000, tzinfo=UTC)
    serve([(newest, 1), (newest - timedelta(minutes=4), 2)])
    collection.initial_sync(user=user)
    responses.reset()
    responses.get(RECENT, json={"items": [], "next": None, "cursors": None})

    collection.poll_user(user=user)

    assert query_of(responses.calls[0])["after"] == [str(int(newest.timestamp() * 1000))]
