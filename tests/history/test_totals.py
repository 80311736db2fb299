"""The pre-aggregated totals stay exact after every kind of write (PostgreSQL triggers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

from django.core.management import call_command
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import Coalesce, TruncHour

from apps.history import selectors, totals
from apps.history.ingest import PlayRecord, insert_plays
from apps.history.models import HourTotal, Play, TrackTotal
from apps.music.models import Source, Track
from apps.music.services import TrackInfo

MIN = 30_000


def expected_tracks() -> set[tuple[Any, ...]]:
    rows = Play.objects.values("user_id", "track_id").annotate(
        plays=Count("id"),
        short=Count("id", filter=Q(ms_played__lt=MIN)),
        unknown=Count("id", filter=Q(ms_played__isnull=True)),
        long=Coalesce(Sum("ms_played", filter=Q(ms_played__gte=MIN)), 0),
        short_ms=Coalesce(Sum("ms_played", filter=Q(ms_played__lt=MIN)), 0),
        first=Min("played_at"),
        first_listen=Min("played_at", filter=Q(ms_played__gte=MIN) | Q(ms_played=None)),
    )
    return {tuple(r.values()) for r in rows}


def actual_tracks() -> set[tuple[Any, ...]]:
    return set(
        TrackTotal.objects.values_list(
            "user_id",
            "track_id",
            "plays",
            "short_plays",
            "unknown_ms_plays",
            "ms_long",
            "ms_short",
            "first_play_at",
            "first_listen_at",
        )
    )


def expected_hours() -> set[tuple[Any, ...]]:
    music = Q(track__kind="music")
    rows = (
        Play.objects.annotate(hour=TruncHour("played_at", tzinfo=UTC))
        .values("user_id", "hour")
        .annotate(
            plays=Count("id"),
            podcasts=Count("id", filter=~music),
            api=Count("id", filter=Q(source="api")),
            music=Count("id", filter=music),
            short=Count("id", filter=music & Q(ms_played__lt=MIN)),
            long=Coalesce(Sum("ms_played", filter=music & Q(ms_played__gte=MIN)), 0),
            estimated=Coalesce(Sum("track__duration_ms", filter=music & Q(ms_played=None)), 0),
        )
    )
    return {tuple(r.values()) for r in rows}


def actual_hours() -> set[tuple[Any, ...]]:
    return set(
        HourTotal.objects.values_list(
            "user_id",
            "hour",
            "plays",
            "podcast_plays",
            "api_plays",
            "music_plays",
            "music_short",
            "music_ms_long",
            "music_ms_estimated",
        )
    )


def assert_exact() -> None:
    assert actual_tracks() == expected_tracks()
    assert actual_hours() == expected_hours()


def test_totals_follow_inserts_updates_relinks_and_deletes(
    postgres: None, user: Any, other_user: Any, make_track: Any, make_play: Any
) -> None:
    assert totals.usable()
    song = make_track("Song", "Artist")
    other = make_track("Other", "Artist")
    episode = make_track("Ep", "Show", kind=Track.Kind.EPISODE)
    t0 = datetime(2026, 3, 1, 10, 59, 50, tzinfo=UTC)
    make_play(user, song, t0)
    make_play(user, song, t0 + timedelta(minutes=5), ms_played=10_000)
    make_play(user, song, t0 + timedelta(hours=1), ms_played=None, source=Source.API)
    make_play(user, episode, t0 + timedelta(hours=2), ms_played=1_000_000)
    make_play(other_user, song, t0)
    assert_exact()
    assert TrackTotal.objects.get(user=user, track=song).plays == 3

    # A merge: the export's ms_played and a more precise time that crosses an hour.
    Play.objects.filter(user=user, played_at=t0).update(
        ms_played=20_000, played_at=t0 + timedelta(seconds=15)
    )
    assert_exact()
    # A local track re-linked to a real one.
    Play.objects.filter(user=user, track=song).update(track=other)
    assert_exact()
    assert not TrackTotal.objects.filter(user=user, track=song).exists()
    Play.objects.filter(user=user, source=Source.API).delete()
    assert_exact()
    Play.objects.for_user(user).delete()
    assert_exact()
    assert not TrackTotal.objects.filter(user=user).exists()
    assert not HourTotal.objects.filter(user=user).exists()


def test_totals_follow_the_insert_path_and_rebuild(postgres: None, user: Any) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = [
        PlayRecord(
            track=TrackInfo(
                name=f"T{i % 7}", artist_name=f"A{i % 3}", uri=f"spotify:track:x{i % 7}"
            ),
            played_at=start + timedelta(minutes=37 * i),
            source=Source.EXPORT_EXTENDED,
            ms_played=(i * 7919) % 240_000,
        )
        for i in range(300)
    ]
    insert_plays(user=user, records=records)
    api = [
        PlayRecord(track=r.track, played_at=r.played_at + timedelta(seconds=2), source=Source.API)
        for r in records[:50]
    ]
    insert_plays(user=user, records=api)  # merged into the export plays (an UPDATE)
    assert Play.objects.count() == 300
    assert_exact()
    TrackTotal.objects.all().delete()
    totals.rebuild()
    assert_exact()


def test_a_new_threshold_stops_the_totals_until_they_are_rebuilt(
    postgres: None, settings: Any, user: Any, make_track: Any, make_play: Any
) -> None:
    song = make_track("Song", "Artist")
    make_play(user, song, datetime(2026, 3, 1, tzinfo=UTC), ms_played=40_000)
    assert totals.usable()
    settings.LISTEN_MIN_MS = 45_000
    assert not totals.usable()
    window = selectors.resolve_window(user=user, days=0)
    assert selectors.top_tracks(user=user, window=window).totals.listens == 0  # read from plays
    call_command("rebuild_play_totals", stdout=StringIO())
    assert totals.threshold() == 45_000 and totals.usable()
    assert TrackTotal.objects.get(user=user).short_plays == 1
    assert selectors.top_tracks(user=user, window=window).totals.listens == 0
