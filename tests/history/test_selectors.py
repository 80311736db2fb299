"""The numbers of every analysis query, against a hand-built dataset with written answers."""

from __future__ import annotations

import gc
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import msgspec
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.history import selectors
from apps.history.models import Play
from apps.history.selectors import QueryError, resolve_window
from apps.music.models import Album, Artist, Source, Track

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, month: int = 3, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def data(user: Any, other_user: Any, make_track: Any, make_play: Any) -> dict[str, Any]:
    a1 = make_track("Alpha Song", "Ärtist A", "Album A")
    a2 = make_track("Beta Song", "Ärtist A", "Album A")
    b1 = make_track("Gamma", "Band B", "Album B", duration_ms=180_000)
    duet = make_track("Duet", "Band B", "Album B")
    duet.artists.add(Artist.objects.get(name="Ärtist A"), through_defaults={"position": 1})
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
    make_play(user, a1, at(10, 10))
    make_play(user, a1, at(10, 11))
    make_play(user, a1, at(11, 9), ms_played=None, source=Source.API)  # estimated 200 000 ms
    make_play(user, a1, at(12, 9), ms_played=10_000)  # short
    make_play(user, a2, at(15, 20), ms_played=120_000)
    make_play(user, b1, at(16, 8), ms_played=180_000)
    make_play(user, b1, at(16, 22), ms_played=60_000)
    make_play(user, duet, at(17, 8), ms_played=100_000)
    make_play(user, episode, at(18, 7), ms_played=1_500_000)
    make_play(user, b1, at(1, 12, month=1, year=2025), ms_played=180_000)  # long before
    for hour in range(10):  # another user's plays are never counted
        make_play(other_user, a1, at(14, hour))
    return {"a1": a1, "a2": a2, "b1": b1, "duet": duet, "episode": episode}


def window(user: Any, **kwargs: Any) -> selectors.Window:
    return resolve_window(user=user, now=NOW, **kwargs)


def test_resolve_window_days_and_dates(user: Any) -> None:
    w = window(user, days=90)
    assert (w.start_date, w.end_date, w.days) == (date(2025, 12, 21), date(2026, 3, 20), 90)
    assert w.start_at == datetime(2025, 12, 21, tzinfo=UTC)
    assert w.end_at == datetime(2026, 3, 21, tzinfo=UTC)
    assert window(user, days=0).start_at is None
    assert window(user, days=0).end_at is None
    explicit = window(user, start=date(2026, 3, 1), end=date(2026, 3, 10))
    assert explicit.days == 10
    with pytest.raises(QueryError, match="after end"):
        window(user, start=date(2026, 3, 10), end=date(2026, 3, 1))
    with pytest.raises(QueryError, match="IANA"):
        window(user, tz="Mars/Olympus")


def test_top_artists_count_the_primary_artist_with_estimated_minutes(user: Any, data: Any) -> None:
    result = selectors.top_artists(user=user, window=window(user, days=90))
    assert [(a.rank, a.name, a.listens, a.minutes, a.share_pct) for a in result.artists] == [
        (1, "Ärtist A", 4, 12.0, 57.1),
        (2, "Band B", 3, 5.7, 42.9),
    ]
    assert result.totals.listens == 7
    assert result.totals.minutes == 17.7
    assert result.totals.minutes_estimated is True
    assert (result.totals.unique_tracks, result.totals.unique_artists) == (4, 2)
    assert result.rule.min_ms_played == 30_000
    assert result.rule.short_plays_excluded == 1
    assert result.window.days == 90
    assert result.window.tz == "UTC"


def test_include_short_counts_short_plays(user: Any, data: Any) -> None:
    result = selectors.top_artists(user=user, window=window(user, days=90), include_short=True)
    assert [(a.name, a.listens, a.minutes) for a in result.artists] == [
        ("Ärtist A", 5, 12.2),
        ("Band B", 3, 5.7),
    ]
    assert result.rule.include_short is True
    assert result.rule.short_plays_excluded == 0


def test_top_tracks_break_ties_by_minutes(user: Any, data: Any) -> None:
    result = selectors.top_tracks(user=user, window=window(user, days=90))
    assert [(t.rank, t.name, t.artist, t.listens, t.minutes) for t in result.tracks] == [
        (1, "Alpha Song", "Ärtist A", 3, 10.0),
        (2, "Gamma", "Band B", 2, 4.0),
        (3, "Beta Song", "Ärtist A", 1, 2.0),
        (4, "Duet", "Band B", 1, 1.7),
    ]
    assert result.tracks[0].spotify_uri == data["a1"].uri
    limited = selectors.top_tracks(user=user, window=window(user, days=90), limit=2)
    assert [t.name for t in limited.tracks] == ["Alpha Song", "Gamma"]
    with pytest.raises(QueryError, match="limit"):
        selectors.top_tracks(user=user, window=window(user, days=90), limit=51)


@pytest.mark.parametrize("days", [90, 0])
def test_top_tracks_tied_past_the_limit_rank_by_name(
    user: Any, make_track: Any, make_play: Any, days: int
) -> None:
    """More tracks tie with the 50th than fit: names pick the last ones in."""
    for i in range(55):
        song = make_track(f"Song {i:02d}", "Artist")
        for minute in range(2 if i >= 52 else 1):
            make_play(user, song, at(10, 10, minute + i // 2), ms_played=100_000)
    tracks = selectors.top_tracks(user=user, window=window(user, days=days), limit=50).tracks
    assert [(t.rank, t.name, t.listens) for t in tracks[:4]] == [
        (1, "Song 52", 2),
        (2, "Song 53", 2),
        (3, "Song 54", 2),
        (4, "Song 00", 1),
    ]
    assert [(t.rank, t.name) for t in tracks[-2:]] == [(49, "Song 45"), (50, "Song 46")]
    assert len(tracks) == 50
    few = selectors.top_tracks(user=user, window=window(user, days=days), limit=2).tracks
    assert [(t.rank, t.name) for t in few] == [(1, "Song 52"), (2, "Song 53")]


@pytest.mark.parametrize("days", [90, 0])
def test_top_albums_tied_past_the_limit_rank_by_name(
    user: Any, make_track: Any, make_play: Any, days: int
) -> None:
    """More albums tie with the 50th than fit: names pick the last ones in, and an album's
    listens are its tracks' together."""
    for i in range(55):
        songs = [make_track(f"Song {i:02d}{side}", "Artist", f"Album {i:02d}") for side in "ab"]
        for minute, song in enumerate(songs[: 2 if i >= 52 else 1]):
            make_play(user, song, at(10, 10, 2 * minute + i // 2), ms_played=100_000)
    albums = selectors.top_albums(user=user, window=window(user, days=days), limit=50).albums
    assert [(a.name, a.listens, a.minutes) for a in albums[:4]] == [
        ("Album 52", 2, 3.3),
        ("Album 53", 2, 3.3),
        ("Album 54", 2, 3.3),
        ("Album 00", 1, 1.7),
    ]
    assert [a.name for a in albums[-2:]] == ["Album 45", "Album 46"]
    assert len(albums) == 50


@pytest.mark.parametrize("days", [90, 0])
def test_top_artists_tied_past_the_limit_rank_by_name(
    user: Any, make_track: Any, make_play: Any, days: int
) -> None:
    """More artists tie with the 50th than fit: names pick the last ones in; every artist is
    still counted in the totals."""
    for i in range(55):
        song = make_track(f"Song {i:02d}", f"Artist {i:02d}")
        for minute in range(2 if i >= 52 else 1):
            make_play(user, song, at(10, 10, minute + i // 2), ms_played=100_000)
    result = selectors.top_artists(user=user, window=window(user, days=days), limit=50)
    assert [(a.rank, a.name, a.listens) for a in result.artists[:4]] == [
        (1, "Artist 52", 2),
        (2, "Artist 53", 2),
        (3, "Artist 54", 2),
        (4, "Artist 00", 1),
    ]
    assert [(a.rank, a.name) for a in result.artists[-2:]] == [(49, "Artist 45"), (50, "Artist 46")]
    assert (result.totals.unique_artists, result.totals.listens) == (55, 58)


@pytest.mark.parametrize("repeat_first", [False, True])
def test_an_artist_discovered_outside_the_top_50_is_counted(
    user: Any, make_track: Any, make_play: Any, repeat_first: bool
) -> None:
    """Discoveries look at every artist of the window, not the best 50: here the one new
    artist is the least played, found whether or not another analysis sharing the window's
    read (the analytics page) read it first."""
    for i in range(60):
        song = make_track(f"Song {i:02d}", f"Artist {i:02d}")
        make_play(user, song, at(1, 12, month=1, year=2025), ms_played=100_000)
        for minute in range(3):
            make_play(user, song, at(5 + i // 20, 10, (3 * i + minute) % 60), ms_played=100_000)
    new = make_track("Fresh", "Newcomer")
    make_play(user, new, at(12, 9), ms_played=100_000)
    w = window(user, days=90)
    with selectors.shared_reads():
        if repeat_first:
            assert selectors.repeat_rate(user=user, window=w).listens == 181
        result = selectors.taste_summary(user=user, window=w)
    assert (result.totals.unique_artists, result.discovered_artists_count) == (61, 1)
    assert [(d.name, d.listens, d.first_listen) for d in result.discovered_artists] == [
        ("Newcomer", 1, at(12, 9))
    ]


@pytest.mark.parametrize("few", [1000, 0])
def test_artists_discovered_outside_the_top_50_rank_by_listens_then_minutes(
    user: Any, make_track: Any, make_play: Any, monkeypatch: Any, few: int
) -> None:
    """Discoveries outside the best 50 are counted from their own plays (past `_FEW_ARTISTS`
    of them, from every artist's), estimated minutes included, and rank as the best do."""
    monkeypatch.setattr(selectors, "_FEW_ARTISTS", few)
    for i in range(60):
        song = make_track(f"Song {i:02d}", f"Artist {i:02d}")
        make_play(user, song, at(1, 12, month=1, year=2025), ms_played=100_000)
        for minute in range(3):
            make_play(user, song, at(5 + i // 20, 10, (3 * i + minute) % 60), ms_played=100_000)
    late = make_track("Late", "Latecomer", duration_ms=250_000)
    make_play(user, late, at(13, 9), ms_played=None, source=Source.API)  # 250 000 ms, estimated
    make_play(user, make_track("Fresh", "Newcomer"), at(12, 9), ms_played=200_000)
    make_play(user, make_track("Hello", "Aardvark"), at(14, 9), ms_played=200_000)
    make_play(user, make_track("Brief", "Passer-by"), at(12, 10), ms_played=10_000)  # short
    w = window(user, days=90)
    result = selectors.taste_summary(user=user, window=w)
    assert result.discovered_artists_count == 3
    assert [(d.name, d.listens, d.first_listen) for d in result.discovered_artists] == [
        ("Latecomer", 1, at(13, 9)),
        ("Aardvark", 1, at(14, 9)),
        ("Newcomer", 1, at(12, 9)),
    ]
    every = selectors.taste_summary(user=user, window=w, include_short=True)
    assert every.discovered_artists_count == 4
    assert [d.name for d in every.discovered_artists][-1] == "Passer-by"


def test_a_lone_analysis_reads_only_its_rankings_and_one_named_late_is_read_alone(
    user: Any, data: Any
) -> None:
    """The window's read brings only the rankings its callers named; when analyses share it,
    a ranking named after it is read on its own, with the same numbers as a read of its own."""
    w = window(user, days=90)
    with selectors.shared_reads(), CaptureQueriesContext(connection) as queries:
        tracks = selectors.top_tracks(user=user, window=w)
        albums = selectors.top_albums(user=user, window=w)
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("WITH t(")]
    assert len(reads) == 2
    assert ", al AS (" not in reads[0] and ", ar AS (" not in reads[0]
    assert ", al AS (" in reads[1] and ", ar AS (" not in reads[1]
    assert [(a.name, a.listens) for a in albums.albums] == [("Album A", 4), ("Album B", 3)]
    alone = selectors.top_albums(user=user, window=w)
    assert (alone.albums, alone.totals) == (albums.albums, albums.totals)
    # The artists counted without their grouping, as with it.
    assert tracks.totals == selectors.top_artists(user=user, window=w).totals
    assert (tracks.totals.listens, tracks.totals.unique_artists) == (7, 2)


def test_top_albums(user: Any, data: Any) -> None:
    result = selectors.top_albums(user=user, window=window(user, days=0))
    assert [(a.name, a.artist, a.listens, a.share_pct) for a in result.albums] == [
        ("Album A", "Ärtist A", 4, 50.0),
        ("Album B", "Band B", 4, 50.0),
    ]


def test_all_time_includes_old_plays_and_window_edges_are_inclusive(user: Any, data: Any) -> None:
    all_time = selectors.top_artists(user=user, window=window(user, days=0))
    assert [(a.name, a.listens) for a in all_time.artists] == [("Ärtist A", 4), ("Band B", 4)]
    assert all_time.window.start is None
    one_day = selectors.top_tracks(
        user=user, window=window(user, start=date(2026, 3, 16), end=date(2026, 3, 16))
    )
    assert [(t.name, t.listens) for t in one_day.tracks] == [("Gamma", 2)]
    edges = selectors.top_tracks(
        user=user, window=window(user, start=date(2026, 3, 10), end=date(2026, 3, 11))
    )
    assert [(t.name, t.listens) for t in edges.tracks] == [("Alpha Song", 3)]


def test_podcasts_are_left_out_of_music_and_have_their_own_tool(user: Any, data: Any) -> None:
    w = window(user, days=90)
    assert "Show P" not in [a.name for a in selectors.top_albums(user=user, window=w).albums]
    podcasts = selectors.top_podcasts(user=user, window=w)
    assert [(s.name, s.plays, s.episodes, s.minutes) for s in podcasts.shows] == [
        ("Show P", 1, 1, 25.0)
    ]
    assert [(e.name, e.show, e.minutes) for e in podcasts.episodes] == [("Ep 1", "Show P", 25.0)]
    assert selectors.coverage(user=user, window=w).podcast_plays_excluded == 1


def test_repeat_rate(user: Any, data: Any) -> None:
    result = selectors.repeat_rate(user=user, window=window(user, days=90))
    assert (result.listens, result.unique_tracks, result.repeat_rate) == (7, 4, 1.75)
    assert (result.repeated_tracks, result.repeat_listens_pct) == (2, 71.4)
    assert [t.name for t in result.most_replayed] == [
        "Alpha Song",
        "Gamma",
        "Beta Song",
        "Duet",
    ]
    assert result.biggest_day_repeat is not None
    day = result.biggest_day_repeat
    assert (day.track, day.artist, day.date, day.listens) == (
        "Gamma",
        "Band B",
        date(2026, 3, 16),
        2,
    )


def test_heatmap_in_utc(user: Any, data: Any) -> None:
    result = selectors.listening_heatmap(user=user, window=window(user, days=90))
    assert result.listens == 7
    # 2026-03-10 is a Tuesday: two listens at 10:00 and 11:00.
    assert result.matrix[1][10] == 1 and result.matrix[1][11] == 1
    assert result.weekday_totals == [2, 3, 1, 0, 0, 0, 1]
    assert result.peak_weekday == "Tuesday"
    assert result.peak_hour == 8
    assert sum(result.hour_totals) == 7
    assert result.weekdays[0] == "Monday" and len(result.matrix) == 7


def test_coverage(user: Any, data: Any) -> None:
    result = selectors.coverage(user=user, window=window(user, days=90))
    assert result.plays_in_window == 9
    assert result.days_with_data == 7
    assert result.days_in_window == 90
    assert result.days_with_data_pct == 7.8
    assert result.first_play_overall == at(1, 12, month=1, year=2025)
    assert result.first_play_in_window == at(10, 10)
    assert result.last_play_in_window == at(18, 7)
    assert [(g.start, g.end, g.days) for g in result.gaps] == [
        (date(2025, 12, 21), date(2026, 3, 9), 79),
        (date(2026, 3, 19), date(2026, 3, 20), 2),
    ][:1]
    assert [(s.source, s.plays) for s in result.plays_by_source] == [
        ("export_extended", 8),
        ("api", 1),
    ]
    assert result.short_plays_excluded == 1
    assert result.coverage.thin is True
    assert "Thin data" in result.note


def test_days_still_to_come_are_not_missing_data(user: Any, data: Any) -> None:
    result = selectors.coverage(
        user=user, window=window(user, start=date(2026, 3, 10), end=date(2026, 4, 30))
    )
    # 10 to 20 March (today): 11 days, not 52; no gap runs into April.
    assert (result.days_in_window, result.days_with_data) == (11, 7)
    assert result.coverage.note == "Plays on 7 of 11 days (63.6%)."
    assert all(g.end <= date(2026, 3, 20) for g in result.gaps)


def test_a_window_wholly_to_come_has_no_days_yet(user: Any, data: Any) -> None:
    ahead = window(user, start=date(2026, 4, 1), end=date(2026, 4, 30))
    result = selectors.coverage(user=user, window=ahead)
    assert (result.days_in_window, result.days_with_data, result.gaps) == (0, 0, [])
    assert result.coverage.note.startswith("No plays in this window;")
    assert selectors.timeline(user=user, window=ahead).periods == []


def test_an_empty_window_says_where_the_data_is(user: Any, data: Any) -> None:
    result = selectors.coverage(
        user=user, window=window(user, start=date(2025, 6, 1), end=date(2025, 6, 30))
    )
    assert (result.plays_in_window, result.coverage.thin) == (0, True)
    assert result.coverage.note == (
        "No plays in this window; the data runs from 2025-01-01 to 2026-03-18 (days=0 is all time)."
    )


def test_an_analysis_keeps_nothing_once_it_returns(user: Any, data: Any) -> None:
    """A long-running web process must not grow with each call: the per-track sums a call read
    are freed when it returns."""
    for days in (90, 0):
        w = window(user, days=days)
        selectors.top_artists(user=user, window=w)
        selectors.top_albums(user=user, window=w)
        selectors.taste_summary(user=user, window=w)
        selectors.compare_periods(user=user, a=w, b=w)
    gc.collect()
    assert [o for o in gc.get_objects() if isinstance(o, selectors.Counted)] == []


def test_taste_summary_and_discovered_artists(user: Any, data: Any) -> None:
    result = selectors.taste_summary(user=user, window=window(user, days=90))
    assert result.totals.listens == 7
    assert [a.name for a in result.top_artists] == ["Ärtist A", "Band B"]
    assert result.repeat_rate == 1.75
    assert result.discovered_artists_count == 1
    # Band B is not new: Duet was first heard in the window, but Gamma long before it.
    assert [(d.name, d.listens, d.first_listen) for d in result.discovered_artists] == [
        ("Ärtist A", 4, at(10, 10))
    ]
    assert (result.peak_weekday, result.peak_hour) == ("Tuesday", 8)


def test_entity_stats_matches_names_without_accents_or_case(user: Any, data: Any) -> None:
    artist = selectors.entity_stats(user=user, window=window(user, days=0), query="ARTIST a")
    assert artist.found and artist.match is not None
    assert artist.match.name == "Ärtist A"
    assert (artist.listens, artist.minutes) == (4, 12.0)
    assert [(y.year, y.listens) for y in artist.by_year] == [(2026, 4)]
    assert [t.name for t in artist.top_tracks] == ["Alpha Song", "Beta Song"]
    band = selectors.entity_stats(user=user, window=window(user, days=0), query="band")
    assert [(y.year, y.listens) for y in band.by_year] == [(2025, 1), (2026, 3)]
    assert band.first_listen == at(1, 12, month=1, year=2025)
    track = selectors.entity_stats(
        user=user, window=window(user, days=0), query="song", type="track"
    )
    assert track.match is not None
    assert (track.match.name, track.match.artist, track.listens) == ("Alpha Song", "Ärtist A", 3)
    assert [a.name for a in track.alternatives] == ["Beta Song"]
    missing = selectors.entity_stats(user=user, window=window(user, days=0), query="nobody")
    assert missing.found is False and missing.listens == 0


def test_compare_periods(user: Any, data: Any) -> None:
    a = window(user, start=date(2026, 3, 10), end=date(2026, 3, 15))
    b = window(user, start=date(2026, 3, 16), end=date(2026, 3, 20))
    result = selectors.compare_periods(user=user, a=a, b=b)
    assert (result.a.totals.listens, result.b.totals.listens) == (4, 3)
    assert result.change.listens == -1
    assert result.change.listens_pct == -25.0
    assert [x.name for x in result.new_artists] == ["Band B"]
    assert [x.name for x in result.vanished_artists] == ["Ärtist A"]
    assert result.risers == [] and result.fallers == []


def test_timeline_includes_empty_periods(user: Any, data: Any) -> None:
    w = window(user, start=date(2026, 3, 9), end=date(2026, 3, 17))
    days = selectors.timeline(user=user, window=w, granularity="day")
    assert [(p.start.day, p.listens) for p in days.periods] == [
        (9, 0),
        (10, 2),
        (11, 1),
        (12, 0),
        (13, 0),
        (14, 0),
        (15, 1),
        (16, 2),
        (17, 1),
    ]
    assert days.minutes_estimated is True
    # The API play's minutes are its track's length; the short play counts when asked.
    assert [(p.listens, p.minutes) for p in days.periods[1:4]] == [(2, 6.7), (1, 3.3), (0, 0.0)]
    every = selectors.timeline(user=user, window=w, granularity="day", include_short=True)
    assert [(p.listens, p.minutes) for p in every.periods[1:4]] == [(2, 6.7), (1, 3.3), (1, 0.2)]
    weeks = selectors.timeline(user=user, window=w, granularity="week")
    assert [(p.start, p.listens) for p in weeks.periods] == [
        (date(2026, 3, 9), 4),
        (date(2026, 3, 16), 3),
    ]
    months = selectors.timeline(user=user, window=window(user, days=0), granularity="month")
    assert months.periods[0] == selectors.Period(start=date(2025, 1, 1), listens=1, minutes=3.0)
    assert len(months.periods) == 15
    assert months.periods[-1].listens == 7


@pytest.fixture
def pacific(user: Any, make_track: Any, make_play: Any) -> Any:
    """A Los Angeles user around the 2026-03-08 DST change (PST -8 to PDT -7)."""
    user.timezone = "America/Los_Angeles"
    user.save()
    song = make_track("Night", "Owl")
    make_play(user, song, datetime(2026, 3, 7, 9, 30, tzinfo=UTC))  # Sat 01:30 PST
    make_play(user, song, datetime(2026, 3, 9, 7, 0, tzinfo=UTC))  # Mon 00:00 PDT
    make_play(user, song, datetime(2026, 3, 9, 9, 30, tzinfo=UTC))  # Mon 02:30 PDT
    make_play(user, song, datetime(2026, 3, 10, 6, 30, tzinfo=UTC))  # Mon 23:30 PDT
    make_play(user, song, datetime(2026, 3, 10, 7, 0, tzinfo=UTC))  # Tue 00:00 PDT
    return user


def test_heatmap_and_days_follow_the_users_zone_across_dst(pacific: Any) -> None:
    w = window(pacific, days=0)
    assert w.tz.key == "America/Los_Angeles"
    heat = selectors.listening_heatmap(user=pacific, window=w)
    assert heat.matrix[5][1] == 1  # Saturday 01:00
    assert heat.matrix[0][0] == 1 and heat.matrix[0][2] == 1 and heat.matrix[0][23] == 1
    assert heat.matrix[1][0] == 1  # Tuesday 00:00
    assert heat.weekday_totals == [3, 1, 0, 0, 0, 1, 0]
    in_utc = selectors.listening_heatmap(user=pacific, window=window(pacific, days=0, tz="UTC"))
    assert in_utc.weekday_totals == [2, 2, 0, 0, 0, 1, 0]
    monday = window(pacific, start=date(2026, 3, 9), end=date(2026, 3, 9))
    assert monday.start_at == datetime(2026, 3, 9, 7, 0, tzinfo=UTC)
    assert selectors.top_tracks(user=pacific, window=monday).totals.listens == 3
    saturday_to_sunday = window(pacific, start=date(2026, 3, 7), end=date(2026, 3, 8))
    assert saturday_to_sunday.end_at == datetime(2026, 3, 9, 7, 0, tzinfo=UTC)
    assert saturday_to_sunday.start_at == datetime(2026, 3, 7, 8, 0, tzinfo=UTC)
    timeline = selectors.timeline(
        user=pacific, window=window(pacific, start=date(2026, 3, 7), end=date(2026, 3, 10))
    )
    assert [(p.start.day, p.listens) for p in timeline.periods] == [
        (7, 1),
        (8, 0),
        (9, 3),
        (10, 1),
    ]
    repeat = selectors.repeat_rate(user=pacific, window=w)
    assert repeat.biggest_day_repeat is not None
    assert repeat.biggest_day_repeat.date == date(2026, 3, 9)


def test_another_users_plays_are_never_counted(other_user: Any, data: Any) -> None:
    result = selectors.top_tracks(user=other_user, window=window(other_user, days=90))
    assert [(t.name, t.listens) for t in result.tracks] == [("Alpha Song", 10)]
    coverage = selectors.coverage(user=other_user, window=window(other_user, days=90))
    assert coverage.plays_in_window == 10


def test_offset_changes_of_a_zone_are_found_to_the_hour() -> None:
    changes, offsets = selectors._zone_changes("America/Los_Angeles")
    spring = changes.index(datetime(2026, 3, 8, 10, 0, tzinfo=UTC))  # 02:00 PST
    hours = [seconds // 3600 for seconds in offsets[spring : spring + 3]]
    assert hours == [-8, -7, -8]  # before, from spring, from autumn
    assert changes[spring + 1] == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)  # 02:00 PDT
    assert selectors._whole_hours("America/Los_Angeles", None, None)
    assert not selectors._whole_hours("Asia/Kolkata", None, None)  # +05:30: plays read one by one
    # Whole-hour offsets, but until 2011 changes at 00:01 local time, within a UTC hour: the
    # hour totals answer only for plays since then.
    goose_bay = ("America/Goose_Bay", datetime(2010, 6, 1, tzinfo=UTC))
    assert not selectors._whole_hours(*goose_bay, None)
    assert not selectors._whole_hours(*goose_bay, datetime(2011, 6, 1, tzinfo=UTC))
    assert selectors._whole_hours("America/Goose_Bay", datetime(2011, 6, 1, tzinfo=UTC), None)
    # Hong Kong's offset changes of the 1970s fell on half hours.
    assert not selectors._whole_hours("Asia/Hong_Kong", None, None)
    assert selectors._whole_hours("Asia/Hong_Kong", datetime(2006, 1, 1, tzinfo=UTC), None)


def test_a_half_hour_zone_places_plays_by_their_own_minutes(pacific: Any) -> None:
    w = window(pacific, days=0, tz="Asia/Kolkata")
    heat = selectors.listening_heatmap(user=pacific, window=w)
    # 2026-03-09 07:00 UTC is 12:30 on Monday in Kolkata; 2026-03-07 09:30 UTC is 15:00 Saturday.
    assert heat.matrix[0][12] == 1 and heat.matrix[0][15] == 1 and heat.matrix[5][15] == 1
    assert heat.matrix[1][12] == 2  # 12:00 and 12:30 on Tuesday
    assert heat.weekday_totals == [2, 2, 0, 0, 0, 1, 0]


def test_a_zone_that_changed_within_a_utc_hour_places_plays_by_their_own_minutes(
    user: Any, make_track: Any, make_play: Any
) -> None:
    """America/Goose_Bay left summer time at 03:01 UTC on 2010-11-07: a play in that UTC hour
    falls on Sunday 00:00 local before 03:01, and on Saturday 23:00 after. The per-hour totals
    (PostgreSQL) hold one row for the whole UTC hour, so the plays are counted one by one."""
    track = make_track("Alpha Song", "Ärtist A", "Album A")
    for when in (
        datetime(2010, 11, 7, 3, 0, 30, tzinfo=UTC),
        datetime(2010, 11, 7, 3, 30, tzinfo=UTC),
    ):
        make_play(user, track, when)
    w = window(user, days=0, tz="America/Goose_Bay")
    heat = selectors.listening_heatmap(user=user, window=w)
    assert (heat.matrix[6][0], heat.matrix[5][23], heat.weekday_totals[5:]) == (1, 1, [1, 1])
    days = selectors.timeline(user=user, window=w, granularity="day").periods
    # The later play falls on the earlier local date: the days start there.
    assert [(p.start, p.listens) for p in days[:2]] == [
        (date(2010, 11, 6), 1),
        (date(2010, 11, 7), 1),
    ]
    cover = selectors.coverage(user=user, window=w)
    assert (cover.coverage.days_with_data, cover.coverage.days_in_window) == (2, 5614)
    assert cover.gaps[0].start == date(2010, 11, 8)


def test_biggest_day_repeat_ties_go_to_the_latest_day_then_the_name(
    user: Any, make_track: Any, make_play: Any
) -> None:
    # More tracks tie than the first read holds, so the ties are read again in full.
    songs = [make_track(f"Song {i:02d}", "Artist") for i in range(selectors.DAY_REPEAT_ROWS + 5)]
    for song in reversed(songs):
        make_play(user, song, at(5, 8))
        make_play(user, song, at(5, 9))
    earlier = make_track("A Song", "Artist")
    make_play(user, earlier, at(4, 8))
    make_play(user, earlier, at(4, 9))
    day = selectors.repeat_rate(user=user, window=window(user, days=30)).biggest_day_repeat
    assert day is not None
    assert (day.track, day.date, day.listens) == ("Song 00", date(2026, 3, 5), 2)


def test_compare_periods_risers_fallers_and_ties_by_name(
    user: Any, make_track: Any, make_play: Any
) -> None:
    # A: Xeno 3, Yarrow 2, Zinc 1. B: Zinc 3, then Yarrow and Xeno tie on listens and minutes.
    xeno, yarrow, zinc = (make_track(f"{n} Song", n) for n in ("Xeno", "Yarrow", "Zinc"))
    for track, plays in ((xeno, 3), (yarrow, 2), (zinc, 1)):
        for i in range(plays):
            make_play(user, track, at(2, 8 + i))
    for track, plays in ((zinc, 3), (yarrow, 1), (xeno, 1)):
        for i in range(plays):
            make_play(user, track, at(12, 8 + i))
    a = window(user, start=date(2026, 3, 1), end=date(2026, 3, 10))
    b = window(user, start=date(2026, 3, 11), end=date(2026, 3, 20))
    result = selectors.compare_periods(user=user, a=a, b=b)
    assert [(r.name, r.listens) for r in result.b.top_artists] == [
        ("Zinc", 3),
        ("Xeno", 1),  # ties with Yarrow: the name decides
        ("Yarrow", 1),
    ]
    assert [(m.name, m.rank_a, m.rank_b, m.rank_change) for m in result.risers] == [
        ("Zinc", 3, 1, 2)
    ]
    assert [(m.name, m.rank_a, m.rank_b, m.listens_a, m.listens_b) for m in result.fallers] == [
        ("Xeno", 1, 2, 3, 1),
        ("Yarrow", 2, 3, 2, 1),
    ]


def test_compare_periods_moves_count_only_within_the_top_50_of_a_period(
    user: Any, make_track: Any, make_play: Any
) -> None:
    """A rank change counts when the artist is in the top 50 of A or of B: 50th and 51st
    swapping places count, 55th and 56th do not. New and vanished artists are listed too."""
    songs = {i: make_track(f"Song {i:02d}", f"Artist {i:02d}") for i in range(1, 61)}
    songs[0] = make_track("Gone", "Vanished")
    songs[61] = make_track("Fresh", "Newcomer")
    swapped = {2: 3, 3: 2, 50: 51, 51: 50, 55: 56, 56: 55}
    for i in range(0, 61):  # A ranks artist i at i (by minutes); the vanished one last
        make_play(user, songs[i], at(2, 8, i % 60), ms_played=300_000 - (i or 99) * 1000)
    for i in range(1, 62):  # B: the same order with three pairs swapped; the new one last
        rank = swapped.get(i, i)
        make_play(user, songs[i], at(12, 8, i % 60), ms_played=300_000 - rank * 1000)
    a = window(user, start=date(2026, 3, 1), end=date(2026, 3, 10))
    b = window(user, start=date(2026, 3, 11), end=date(2026, 3, 20))
    result = selectors.compare_periods(user=user, a=a, b=b)
    assert [(m.name, m.rank_a, m.rank_b) for m in result.risers] == [
        ("Artist 03", 3, 2),
        ("Artist 51", 51, 50),
    ]
    assert [(m.name, m.rank_a, m.rank_b) for m in result.fallers] == [
        ("Artist 02", 2, 3),
        ("Artist 50", 50, 51),
    ]
    assert [n.name for n in result.new_artists] == ["Newcomer"]
    assert [v.name for v in result.vanished_artists] == ["Vanished"]


def test_podcast_shows_and_episodes_rank_by_minutes_then_plays(user: Any, make_play: Any) -> None:
    def episode(name: str, show: Album) -> Track:
        return Track.objects.create(
            uri=f"spotify:episode:{name}",
            kind=Track.Kind.EPISODE,
            name=name,
            name_key=name.lower(),
            album=show,
            duration_ms=3_600_000,
            first_source=Source.EXPORT_EXTENDED,
        )

    daily = Album.objects.create(name="Daily", name_key="daily")
    weekly = Album.objects.create(name="Weekly", name_key="weekly")
    d1, d2, w1 = episode("D1", daily), episode("D2", daily), episode("W1", weekly)
    make_play(user, d1, at(10, 8), ms_played=1_200_000)  # 20 min
    make_play(user, d2, at(11, 8), ms_played=1_200_000)  # 20 min
    make_play(user, w1, at(12, 8), ms_played=2_700_000)  # 45 min
    make_play(user, d2, at(13, 8), ms_played=10_000)  # short: left out
    result = selectors.top_podcasts(user=user, window=window(user, days=30))
    assert (result.plays, result.minutes, result.rule.short_plays_excluded) == (3, 85.0, 1)
    assert [(s.name, s.plays, s.episodes, s.minutes) for s in result.shows] == [
        ("Weekly", 1, 1, 45.0),
        ("Daily", 2, 2, 40.0),
    ]
    assert [(e.name, e.show, e.minutes) for e in result.episodes] == [
        ("W1", "Weekly", 45.0),
        ("D1", "Daily", 20.0),  # ties with D2 on minutes and plays: the name decides
        ("D2", "Daily", 20.0),
    ]


@pytest.mark.parametrize(
    "zone",
    ["UTC", "America/Los_Angeles", "Europe/Paris", "Australia/Adelaide", "Asia/Kathmandu"],
)
def test_local_hours_and_days_are_counted_in_the_database_as_python_counts_them(
    user: Any, make_track: Any, make_play: Any, zone: str
) -> None:
    """The local hour and day numbers the raw-play analyses group by (plain arithmetic on the
    zone's offset changes) equal Python's conversion, around DST changes and in zones whose
    offsets are not whole hours, for open and bounded windows."""
    track = make_track("Alpha Song", "Ärtist A", "Album A")
    changes = [datetime(2025, 3, 9, 10, 0, tzinfo=UTC), datetime(2025, 4, 6, 16, 0, tzinfo=UTC)]
    changes += [datetime(2025, 10, 5, 16, 0, tzinfo=UTC), datetime(2025, 11, 2, 9, 0, tzinfo=UTC)]
    instants = sorted(
        {
            at + timedelta(minutes=m)
            for at in [*changes, datetime(2026, 3, 29, 1, 0, tzinfo=UTC)]
            for m in range(-95, 100, 5)
        }
    )
    instants.append(datetime(2025, 6, 1, 9, 59, 59, 999_999, tzinfo=UTC))  # the hour's last µs
    for at in instants:
        make_play(user, track, at)
    tz = ZoneInfo(zone)
    day_one = datetime(1970, 1, 1)
    expected = {
        at: (
            int((at.astimezone(tz).replace(tzinfo=None) - day_one).total_seconds()) // 3600,
            (at.astimezone(tz).date() - day_one.date()).days,
        )
        for at in instants
    }
    for window in (
        resolve_window(user=user, now=NOW, days=0, tz=zone),
        resolve_window(user=user, now=NOW, start=date(2025, 3, 1), end=date(2025, 10, 31), tz=zone),
    ):
        rows = (
            Play.objects.filter(user=user)
            .annotate(
                hour=selectors._local_number(window, selectors.HOUR_SECONDS),
                day=selectors._local_number(window, selectors.DAY_SECONDS),
            )
            .values_list("played_at", "hour", "day")
        )
        inside = [
            row
            for row in rows
            if (window.start_at is None or row[0] >= window.start_at)
            and (window.end_at is None or row[0] < window.end_at)
        ]
        assert len(inside) > 100
        assert {at: (hour, day) for at, hour, day in inside} == {
            at: expected[at] for at, *_ in inside
        }


def test_break_ties_orders_each_run_of_equal_rows_by_name_then_key() -> None:
    """The runs of rows with equal listens and minutes are put in `_tie_order`; the rest stay
    where they are: the same order as one full sort, on rows with many runs of every length."""
    import random

    rng = random.Random(7)
    name_keys = {k: rng.choice(["adele", "bjork", "björk", "cher", "", None]) for k in range(300)}
    rows: list[tuple[Any, int, int]] = [
        (k, rng.randint(1, 6), rng.choice([60_000, 90_000])) for k in range(300)
    ]
    rows.append((None, 3, 60_000))  # the row without an artist
    rows.sort(key=lambda r: (r[1], r[2]), reverse=True)
    expected = sorted(
        rows,
        key=lambda r: (-r[1], -r[2], selectors._tie_order(r[0], name_keys.get(r[0]), "unknown")),
    )
    assert selectors._break_ties(rows, name_keys, "unknown") == expected
    # No ties at all: the rows come back as they are.
    assert selectors._break_ties([(1, 3, 10), (2, 2, 10), (3, 2, 5)], {}, "u") == [
        (1, 3, 10),
        (2, 2, 10),
        (3, 2, 5),
    ]
    assert selectors._break_ties([], {}, "u") == []


def test_a_listen_starts_at_exactly_the_threshold(
    user: Any, make_track: Any, make_play: Any
) -> None:
    song = make_track("Edge", "Edge Artist")
    make_play(user, song, at(19, 10), ms_played=30_000)  # a listen
    make_play(user, song, at(19, 11), ms_played=29_999)  # a short play
    result = selectors.top_tracks(user=user, window=window(user, days=7))
    assert [(t.name, t.listens) for t in result.tracks] == [("Edge", 1)]
    assert (result.rule.min_ms_played, result.rule.short_plays_excluded) == (30_000, 1)
    both = selectors.top_tracks(user=user, window=window(user, days=7), include_short=True)
    assert [(t.name, t.listens) for t in both.tracks] == [("Edge", 2)]


def test_a_calls_tz_moves_days_hours_and_years_as_the_users_own_zone_does(
    user: Any, make_track: Any, make_play: Any
) -> None:
    """16:00 UTC on 31 December is already New Year's Day, 01:00, in Tokyo."""
    song = make_track("Auld Lang Syne", "Choir")
    make_play(user, song, datetime(2025, 12, 31, 16, 0, tzinfo=UTC), ms_played=200_000)
    everything = {"days": 0}
    tokyo = selectors.listening_heatmap(
        user=user, window=window(user, tz="Asia/Tokyo", **everything)
    )
    utc = selectors.listening_heatmap(user=user, window=window(user, **everything))
    assert tokyo.window.tz == "Asia/Tokyo"
    assert (tokyo.peak_weekday, tokyo.peak_hour, utc.peak_weekday, utc.peak_hour) == (
        "Thursday",
        1,
        "Wednesday",
        16,
    )
    in_tokyo = selectors.entity_stats(
        user=user, window=window(user, tz="Asia/Tokyo", **everything), query="choir", type="artist"
    )
    assert [(y.year, y.listens) for y in in_tokyo.by_year] == [(2026, 1)]
    in_utc = selectors.entity_stats(
        user=user, window=window(user, **everything), query="choir", type="artist"
    )
    assert [(y.year, y.listens) for y in in_utc.by_year] == [(2025, 1)]
    # A user whose own zone is Tokyo gets the same answers without tz.
    user.timezone = "Asia/Tokyo"
    user.save()
    own = selectors.listening_heatmap(user=user, window=window(user, **everything))
    assert (own.window.tz, own.peak_weekday, own.peak_hour) == ("Asia/Tokyo", "Thursday", 1)


def test_period_ranges_add_up_to_every_day_of_the_window_once() -> None:
    """The signed years, months and days a long window is summed from cover each of its days
    exactly once, whatever its edges (and from the first year when it has no start)."""
    import random

    def days(low: date, high: date) -> list[date]:
        return [low + timedelta(days=i) for i in range((high - low).days)]

    origin = date(2000, 1, 1)
    rng = random.Random(7)
    edges = [date(2016, 1, 1) + timedelta(days=rng.randrange(4000)) for _ in range(120)]
    edges += [date(2020, 1, 1), date(2020, 12, 31), date(2021, 1, 16), date(2021, 7, 2)]
    for start in [None, *edges[:60]]:
        end = max(edges[rng.randrange(len(edges))], start or origin) + timedelta(days=1)
        counts: Counter[date] = Counter()
        for sign, unit, low, high in selectors._period_ranges(start, end):
            assert low is None or low < high
            assert unit != "day" or (high - cast(date, low)).days <= 16  # at most half a month
            for day in days(low or origin, high):
                counts[day] += sign
        assert {d for d, n in counts.items() if n} == set(days(start or origin, end))
        assert set(counts.values()) - {0} <= {1}


def test_long_windows_sum_their_artists_from_the_period_totals(
    postgres: None, user: Any, other_user: Any, make_track: Any, make_play: Any, monkeypatch: Any
) -> None:
    """A window of two years or more in the user's zone is summed from the artists' per-year and
    per-month totals and a few days of plays: the same totals, ranks and ties as from every
    play, across month and year edges of a zone that is not UTC."""
    user.timezone = "America/Los_Angeles"
    user.save(update_fields=["timezone"])
    tracks = [make_track(f"Song {i}", f"Artist {i % 5}") for i in range(9)]
    nameless = make_track("Nameless", "Nobody")
    Track.objects.filter(pk=nameless.pk).update(primary_artist=None)
    tracks.append(Track.objects.get(pk=nameless.pk))
    episode = make_track("Ep", "Show", kind=Track.Kind.EPISODE)
    zone = ZoneInfo("America/Los_Angeles")
    start = datetime(2023, 11, 1, tzinfo=zone)
    for i in range(700):
        at_ = start + timedelta(hours=29 * i + (i % 7))
        ms = (None, 10_000, 200_000, 95_000, 31_000)[i % 5]
        make_play(user, tracks[(i * i) % 10], at_, ms_played=ms, source=Source.API)
    # Plays on the first and last instants of local years and months.
    for moment in ("2025-01-01T00:00", "2024-12-31T23:59", "2025-03-01T00:00", "2025-02-28T23:59"):
        make_play(user, tracks[1], datetime.fromisoformat(moment).replace(tzinfo=zone))
    make_play(user, episode, datetime(2025, 1, 5, tzinfo=zone), ms_played=900_000)
    for i in range(40):
        make_play(other_user, tracks[0], datetime(2024, 6, 1, tzinfo=UTC) + timedelta(days=i))
    # Shorter windows than the default's two years, over fewer plays: the same path.
    monkeypatch.setattr(selectors, "PERIOD_TOTALS_MIN_DAYS", 300)
    windows = [
        (date(2024, 1, 1), date(2025, 12, 31)),
        (date(2023, 12, 15), date(2025, 2, 28)),
        (date(2024, 2, 17), date(2025, 3, 1)),
        (date(2024, 12, 31), date(2026, 1, 9)),
        (None, date(2025, 6, 30)),
    ]
    for first, last in windows:
        w = window(user, start=first, end=last)
        for include_short in (False, True):
            rule = selectors.Rule.default(include_short)
            with CaptureQueriesContext(connection) as queries:
                fast = selectors.period_artists(user, w, rule)
            assert any("history_artistyeartotal" in q["sql"] for q in queries)
            slow = selectors.counted(user, w, rule).artists()
            assert fast == slow
    # By hand: the listens of one window, counted from the plays in Python.
    w = window(user, start=date(2024, 2, 17), end=date(2025, 3, 1))
    plays = Play.objects.for_user(user).filter(
        played_at__gte=w.start_at, played_at__lt=w.end_at, track__kind="music"
    )
    listens = [p for p in plays if p.ms_played is None or p.ms_played >= 30_000]
    totals, ranked = selectors.period_artists(user, w, selectors.Rule.default())
    assert totals.listens == len(listens) == sum(n for _, n, _ in ranked)
    assert totals.unique_tracks == len({p.track_id for p in listens})
    assert None in [k for k, _, _ in ranked]  # the nameless track's plays, as Unknown artist
    # The tool answers the same either way.
    a, b = window(user, start=date(2024, 1, 1), end=date(2024, 12, 31)), w
    fast_result = selectors.compare_periods(user=user, a=a, b=b)
    monkeypatch.setattr(selectors, "PERIOD_TOTALS_MIN_DAYS", 10_000)
    slow_result = selectors.compare_periods(user=user, a=a, b=b)
    assert msgspec.structs.replace(fast_result, as_of=NOW) == msgspec.structs.replace(
        slow_result, as_of=NOW
    )
