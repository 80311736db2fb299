"""The pre-aggregated totals stay exact after every kind of write (PostgreSQL triggers)."""

from __future__ import annotations

import time
import zoneinfo
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import Coalesce, TruncHour

from apps.accounts.models import User
from apps.history import selectors, totals
from apps.history.ingest import PlayRecord, insert_plays
from apps.history.models import (
    ArtistMonthTotal,
    ArtistYearTotal,
    DayTotal,
    HourTotal,
    Play,
    TrackTotal,
)
from apps.music.models import Source, Track
from apps.music.services import TrackInfo
from tests.conftest import in_flight

MIN = 30_000


def expected_tracks() -> set[tuple[Any, ...]]:
    rows = Play.objects.values(
        "user_id",
        "track_id",
        "track__primary_artist_id",
        "track__album_id",
        "track__kind",
        "track__duration_ms",
    ).annotate(
        plays=Count("id"),
        short=Count("id", filter=Q(ms_played__lt=MIN)),
        unknown=Count("id", filter=Q(ms_played__isnull=True)),
        long=Coalesce(Sum("ms_played", filter=Q(ms_played__gte=MIN)), 0),
        short_ms=Coalesce(Sum("ms_played", filter=Q(ms_played__lt=MIN)), 0),
        first=Min("played_at"),
        first_listen=Min("played_at", filter=Q(ms_played__gte=MIN) | Q(ms_played=None)),
        last=Max("played_at"),
        last_listen=Max("played_at", filter=Q(ms_played__gte=MIN) | Q(ms_played=None)),
    )
    return {tuple(r.values()) for r in rows}


def actual_tracks() -> set[tuple[Any, ...]]:
    return set(
        TrackTotal.objects.values_list(
            "user_id",
            "track_id",
            "artist_id",
            "album_id",
            "kind",
            "duration_ms",
            "plays",
            "short_plays",
            "unknown_ms_plays",
            "ms_long",
            "ms_short",
            "first_play_at",
            "first_listen_at",
            "last_play_at",
            "last_listen_at",
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


def _best(days: Counter[date]) -> tuple[int, date | None]:
    """The most on one day, and the latest such day."""
    if not days or max(days.values()) == 0:
        return 0, None
    n, day = max((n, day) for day, n in days.items())
    return n, day


def expected_best_days() -> set[tuple[Any, ...]]:
    """Per user and music track, counted in Python in the user's zone: the most plays on one
    day and the latest such day, and the same for listens."""
    zones = {u.pk: zoneinfo.ZoneInfo(u.timezone) for u in User.objects.all()}
    plays: dict[tuple[int, int], Counter[date]] = {}
    listens: dict[tuple[int, int], Counter[date]] = {}
    for user_id, track_id, kind, at, ms in Play.objects.values_list(
        "user_id", "track_id", "track__kind", "played_at", "ms_played"
    ):
        key = (user_id, track_id)
        plays.setdefault(key, Counter())
        listens.setdefault(key, Counter())
        if kind != "music":
            continue
        day = at.astimezone(zones[user_id]).date()
        plays[key][day] += 1
        listens[key][day] += ms is None or ms >= MIN
    return {(*key, *_best(plays[key]), *_best(listens[key])) for key in plays}


def actual_best_days() -> set[tuple[Any, ...]]:
    for user in User.objects.all():
        totals.refresh_best_days(user.pk)
    assert not TrackTotal.objects.filter(best_days_stale=True).exists()
    return set(
        TrackTotal.objects.values_list(
            "user_id",
            "track_id",
            "best_day_plays",
            "best_day_plays_on",
            "best_day_listens",
            "best_day_listens_on",
        )
    )


def _add_music(sums: list[int], ms: int | None, length: int | None) -> None:
    """A music play into [plays, short, of unknown length, ms of long ones, ms of short ones,
    the lengths standing in for the unknown]."""
    sums[0] += 1
    if ms is None:
        sums[2] += 1
        sums[5] += length or 0
    elif ms < MIN:
        sums[1] += 1
        sums[4] += ms
    else:
        sums[3] += ms


def expected_days() -> set[tuple[Any, ...]]:
    """Per user and day of the user's zone, counted in Python: plays, and the music sums."""
    zones = {u.pk: zoneinfo.ZoneInfo(u.timezone) for u in User.objects.all()}
    sums: dict[tuple[int, date], list[int]] = {}
    for user_id, kind, at, ms, length in Play.objects.values_list(
        "user_id", "track__kind", "played_at", "ms_played", "track__duration_ms"
    ):
        day = sums.setdefault((user_id, at.astimezone(zones[user_id]).date()), [0] * 7)
        day[0] += 1
        if kind == "music":
            music = day[1:]
            _add_music(music, ms, length)
            day[1:] = music
    return {(*key, *day) for key, day in sums.items()}


def actual_days() -> set[tuple[Any, ...]]:
    return set(DayTotal.objects.values_list("user_id", "day", *totals.DAY_COLUMNS))


def expected_artist_periods(unit: str) -> set[tuple[Any, ...]]:
    """Per user, artist and month (or year) of the user's zone, the music sums of the plays
    of tracks with an artist, counted in Python."""
    zones = {u.pk: zoneinfo.ZoneInfo(u.timezone) for u in User.objects.all()}
    sums: dict[tuple[int, int, date], list[int]] = {}
    for user_id, artist_id, at, ms, length in Play.objects.filter(
        track__kind="music", track__primary_artist__isnull=False
    ).values_list(
        "user_id", "track__primary_artist_id", "played_at", "ms_played", "track__duration_ms"
    ):
        day = at.astimezone(zones[user_id]).date()
        start = day.replace(day=1) if unit == "month" else day.replace(month=1, day=1)
        _add_music(sums.setdefault((user_id, artist_id, start), [0] * 6), ms, length)
    return {(*key, *period) for key, period in sums.items()}


def actual_artist_periods(unit: str) -> set[tuple[Any, ...]]:
    model = ArtistMonthTotal if unit == "month" else ArtistYearTotal
    return set(model.objects.values_list("user_id", "artist_id", unit, *totals.MUSIC_COLUMNS))


def assert_exact() -> None:
    assert actual_tracks() == expected_tracks()
    assert actual_hours() == expected_hours()
    assert actual_days() == expected_days()
    for unit in ("month", "year"):
        assert actual_artist_periods(unit) == expected_artist_periods(unit)
    assert actual_best_days() == expected_best_days()


def test_totals_follow_inserts_updates_relinks_and_deletes(
    postgres: None, user: Any, other_user: Any, make_track: Any, make_play: Any
) -> None:
    assert totals.usable()
    song = make_track("Song", "Artist")
    other = make_track("Other", "Artist")
    episode = make_track("Ep", "Show", kind=Track.Kind.EPISODE)
    nameless = make_track("Nameless", "Nobody")  # no artist: in the days, not the artists
    Track.objects.filter(pk=nameless.pk).update(primary_artist=None)
    t0 = datetime(2026, 3, 1, 10, 59, 50, tzinfo=UTC)
    make_play(user, nameless, t0 - timedelta(days=1))
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


def test_totals_follow_edits_of_the_track(
    postgres: None, user: Any, other_user: Any, make_track: Any, make_play: Any
) -> None:
    """The copies of a track's artist, album, kind and length follow an edit (the admin's),
    and so do the hours and best days those feed."""
    song = make_track("Song", "Artist", "First album")
    elsewhere = make_track("Elsewhere", "Other artist", "Second album")
    t0 = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)
    for i in range(3):
        make_play(user, song, t0 + timedelta(hours=i), ms_played=None, source=Source.API)
    make_play(user, song, t0 + timedelta(hours=5), ms_played=10_000)
    make_play(other_user, song, t0)
    make_play(user, elsewhere, t0 + timedelta(minutes=1))
    assert_exact()

    song.primary_artist, song.album = elsewhere.primary_artist, elsewhere.album
    song.save()
    assert_exact()
    assert set(TrackTotal.objects.filter(track=song).values_list("artist_id", flat=True)) == {
        elsewhere.primary_artist_id
    }
    song.duration_ms = 123_456  # the estimate for its plays of unknown duration
    song.save()
    assert_exact()
    assert HourTotal.objects.get(user=user, hour=t0.replace(minute=0)).music_ms_estimated == 123_456
    song.kind = Track.Kind.EPISODE  # no longer music: out of the listens and the best days
    song.save()
    assert_exact()
    window = selectors.resolve_window(days=0, tz="UTC", user=user)
    assert selectors.top_tracks(user=user, window=window).totals.listens == 1
    Track.objects.filter(pk=song.pk).update(kind=Track.Kind.MUSIC, duration_ms=None)
    assert_exact()
    assert selectors.top_tracks(user=user, window=window).totals.listens == 4


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


def test_a_zone_change_looks_the_zone_up_once_whatever_the_plan(postgres: None, user: Any) -> None:
    """The day and artist recounts of a zone change read the user's zone once a statement. The
    plan for a user the statistics don't know yet (just after a first import) is a nested loop
    with the zone lookup inside; it was run again for each play, reading all the user's plays
    each time: minutes for a large import, more for larger ones."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    insert_plays(
        user=user,
        records=[
            PlayRecord(
                track=TrackInfo(name=f"T{i % 5}", artist_name="A", uri=f"spotify:track:z{i % 5}"),
                played_at=start + timedelta(hours=5 * i),
                source=Source.EXPORT_EXTENDED,
                ms_played=200_000,
            )
            for i in range(200)
        ],
    )
    with connection.cursor() as cursor:
        # The plan of unknown statistics, on any statistics: nested loops, nothing kept.
        for name in ("hashjoin", "mergejoin", "material"):
            cursor.execute(f"SET LOCAL enable_{name} = off")
        cursor.execute("SET LOCAL track_functions = 'pl'")
        User.objects.filter(pk=user.pk).update(timezone="Asia/Tokyo")
        cursor.execute(
            "SELECT calls FROM pg_stat_xact_user_functions WHERE funcname = 'history_zone'"
        )
        # Days, artists' months and artists' years: one statement.
        assert cursor.fetchone() == (1,)
    assert_exact()
    assert DayTotal.objects.filter(user=user).aggregate(n=Sum("plays"))["n"] == 200


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


def test_best_days_follow_the_days_of_the_users_zone(
    postgres: None, user: Any, make_track: Any, make_play: Any
) -> None:
    """Each track's biggest day: raised by inserts, recounted when its best day loses a play or
    the user's zone changes; ties go to the latest day."""
    User.objects.filter(pk=user.pk).update(timezone="America/Los_Angeles")
    song = make_track("Song", "Artist")
    # 2026-03-08 is the spring-forward day in Los Angeles; 06:30 UTC is still the 7th there.
    for at in ("2026-03-08T06:30", "2026-03-08T09:00", "2026-03-08T10:00", "2026-03-09T20:00"):
        make_play(user, song, datetime.fromisoformat(at).replace(tzinfo=UTC))
    # The last day of March, and of 2026, there: the artist's month and year are those days'.
    for at in ("2026-04-01T03:00", "2027-01-01T05:00"):
        make_play(user, song, datetime.fromisoformat(at).replace(tzinfo=UTC))
    assert_exact()
    best = TrackTotal.objects.get(user=user, track=song)
    assert (best.best_day_listens, best.best_day_listens_on) == (2, date(2026, 3, 8))

    # A tie on a later day takes the place; short plays count as plays, not as listens.
    make_play(user, song, datetime(2026, 3, 10, 18, tzinfo=UTC))
    make_play(user, song, datetime(2026, 3, 10, 19, tzinfo=UTC))
    make_play(user, song, datetime(2026, 3, 11, 1, tzinfo=UTC), ms_played=5_000)  # the 10th there
    assert_exact()
    best.refresh_from_db()
    assert (best.best_day_listens, best.best_day_listens_on) == (2, date(2026, 3, 10))
    assert (best.best_day_plays, best.best_day_plays_on) == (3, date(2026, 3, 10))

    # Losing plays on the best day falls back to the next best.
    Play.objects.filter(user=user, played_at__date=date(2026, 3, 11)).delete()
    Play.objects.filter(user=user, played_at=datetime(2026, 3, 10, 18, tzinfo=UTC)).delete()
    assert_exact()
    best.refresh_from_db()
    assert (best.best_day_listens, best.best_day_listens_on) == (2, date(2026, 3, 8))

    # In UTC the plays of the 8th fall on one day: three of them.
    user.timezone = "UTC"
    user.save(update_fields=["timezone"])
    assert_exact()
    best.refresh_from_db()
    assert (best.best_day_listens, best.best_day_listens_on) == (3, date(2026, 3, 8))


def test_the_biggest_day_reads_the_totals_in_the_users_zone_only(
    postgres: None, user: Any, make_track: Any, make_play: Any
) -> None:
    User.objects.filter(pk=user.pk).update(timezone="America/Los_Angeles")
    user.refresh_from_db()
    song, other = make_track("Song", "Artist"), make_track("Other", "Artist")
    for hour in (3, 5, 8):  # the 1st in Los Angeles at 03:00 and 05:00 UTC, the 2nd in UTC
        make_play(user, song, datetime(2026, 3, 2, hour, tzinfo=UTC))
    make_play(user, other, datetime(2026, 3, 2, 20, tzinfo=UTC))
    make_play(user, other, datetime(2026, 3, 2, 21, tzinfo=UTC))
    assert totals.best_days_current(user.pk, "America/Los_Angeles")
    assert not totals.best_days_current(user.pk, "UTC")

    def biggest(tz: str) -> tuple[str, date, int]:
        window = selectors.resolve_window(user=user, days=0, tz=tz)
        day = selectors.repeat_rate(user=user, window=window).biggest_day_repeat
        assert day is not None
        return day.track, day.date, day.listens

    # From the totals: a tie of two on the 2nd (Other) and on the 1st (Song): the later wins.
    assert biggest("America/Los_Angeles") == ("Other", date(2026, 3, 2), 2)
    assert biggest("UTC") == ("Song", date(2026, 3, 2), 3)  # read from plays


def test_a_zone_the_database_does_not_know_counts_days_in_utc(
    postgres: None, user: Any, make_track: Any, make_play: Any
) -> None:
    """Writes never fail on a user's zone; the days are then UTC days, and only a UTC window
    reads them."""
    User.objects.filter(pk=user.pk).update(timezone="Nowhere/Else")
    song = make_track("Song", "Artist")
    make_play(user, song, datetime(2026, 3, 2, 23, tzinfo=UTC))
    make_play(user, song, datetime(2026, 3, 3, 1, tzinfo=UTC))
    assert totals.refresh_best_days(user.pk) == 1
    best = TrackTotal.objects.get(user=user, track=song)
    assert (best.best_day_listens, best.best_day_listens_on) == (1, date(2026, 3, 3))
    assert totals.best_days_current(user.pk, "UTC")
    assert not totals.best_days_current(user.pk, "Nowhere/Else")
    assert set(DayTotal.objects.values_list("day", "plays")) == {
        (date(2026, 3, 2), 1),
        (date(2026, 3, 3), 1),
    }
    assert totals.days_counted_in(user.pk, "UTC")
    assert not totals.days_counted_in(user.pk, "Nowhere/Else")


@pytest.mark.django_db(transaction=True)
def test_best_days_held_by_a_write_in_flight_are_read_from_plays(
    postgres: None, user: Any, make_track: Any, make_play: Any
) -> None:
    """A refresh skips the rows another transaction holds and never waits on it; while any stay
    stale, the biggest day is read from plays."""
    song = make_track("Song", "Artist")
    make_play(user, song, datetime(2026, 3, 2, 10, tzinfo=UTC))
    assert totals.best_days_current(user.pk, "UTC")
    make_play(user, song, datetime(2026, 3, 2, 11, tzinfo=UTC))  # stale again
    # A write in flight holds the user's totals rows.
    with in_flight(lambda: list(TrackTotal.objects.select_for_update().filter(user=user))):
        started = time.monotonic()
        assert not totals.best_days_current(user.pk, "UTC")
        window = selectors.resolve_window(user=user, days=0, tz="UTC")
        day = selectors.repeat_rate(user=user, window=window).biggest_day_repeat
        assert time.monotonic() - started < 5  # nothing waited on the lock
        assert day is not None and (day.track, day.date, day.listens) == (
            "Song",
            date(2026, 3, 2),
            2,
        )
    assert totals.best_days_current(user.pk, "UTC")
    assert TrackTotal.objects.get(user=user).best_day_listens == 2


def test_the_best_day_indexes_hold_counted_days_alone(
    postgres: None, user: Any, make_track: Any, make_play: Any
) -> None:
    """A new row (stale, its best days not counted yet) has no entry in either best-day index,
    so an import pays none; once counted, the biggest day reads them."""
    song, other = make_track("Song", "Artist"), make_track("Other", "Artist")
    for hour in (9, 10, 11):
        make_play(user, song, datetime(2026, 3, 8, hour, tzinfo=UTC))
    make_play(user, other, datetime(2026, 3, 9, 9, tzinfo=UTC))

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'tracktotal_best%%'"
        )
        indexes = dict(cursor.fetchall())
    assert sorted(indexes) == ["tracktotal_best_day_listens", "tracktotal_best_day_plays"]
    for name, definition in indexes.items():
        assert definition.endswith(f"WHERE ({name.replace('tracktotal_', '')} > 0)"), definition

    biggest = (
        TrackTotal.objects.filter(user=user, best_day_listens__gt=0)
        .order_by("-best_day_listens", "-best_day_listens_on")
        .values_list("track_id", "best_day_listens", "best_day_listens_on")
    )
    assert TrackTotal.objects.filter(best_days_stale=True).count() == 2
    assert list(biggest) == []
    assert totals.refresh_best_days(user.pk) == 2
    assert list(biggest.all()) == [(song.pk, 3, date(2026, 3, 8)), (other.pk, 1, date(2026, 3, 9))]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    assert "tracktotal_best_day_listens" in biggest.explain()
