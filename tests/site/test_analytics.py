"""The analytics page: the numbers of the tools' selectors, in the viewer's zone, for the viewer."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.history.models import Play
from apps.music.models import Track


def _body(client, user, **params):
    client.force_login(user)
    response = client.get(reverse("analytics"), params)
    assert response.status_code == 200
    return response, " ".join(response.content.decode().split())


@pytest.fixture
def history(user, other_user, make_track, make_play):
    """Alice, in UTC: within the last 90 days, Radiohead 3 listens (one short play left out),
    Massive Attack 2 listens; all on Tuesdays at 20:00 or 08:00 UTC. Bob: 9 plays of Teardrop."""
    today = timezone.now().astimezone(UTC).date()
    tuesday = today - timedelta(days=(today.weekday() - 1) % 7 or 7)
    at = lambda weeks, hour: datetime.combine(  # noqa: E731
        tuesday - timedelta(weeks=weeks), datetime.min.time(), tzinfo=UTC
    ).replace(hour=hour)
    pa = make_track("Paranoid Android", "Radiohead", "OK Computer")
    kp = make_track("Karma Police", "Radiohead", "OK Computer")
    td = make_track("Teardrop", "Massive Attack", "Mezzanine")
    make_play(user, pa, at(1, 20))
    make_play(user, pa, at(2, 20))
    make_play(user, kp, at(3, 20))
    make_play(user, kp, at(4, 20), ms_played=5_000)  # short: not a listen
    make_play(user, td, at(5, 8), source=Play.Source.API, ms_played=None)
    make_play(user, td, at(6, 8))
    make_play(user, td, at(30, 8))  # 210 days ago: only in the 365-day and all-time windows
    for week in range(9):
        make_play(other_user, td, at(week, 3))
    return today


def test_the_default_window_is_90_days_with_the_tools_numbers(client, user, history):
    from apps.history import selectors

    response, body = _body(client, user)
    report = response.context["report"]
    window = selectors.resolve_window(user=user, days=90)
    expected = selectors.taste_summary(user=user, window=window)
    assert report.summary.totals == expected.totals
    assert '<p class="big" id="total-listens">5</p>' in body
    assert '<p class="big" id="unique-artists">2</p>' in body
    assert "1 short play left out." in body
    assert '<p class="big" id="peak">Tuesday 20:00</p>' in body
    assert 'class="current" aria-current="true">90 days</a>' in body


def test_with_nothing_in_the_last_90_days_the_page_opens_on_all_time(
    client, user, make_track, make_play
):
    """An export whose history ended months ago: the page opens on all time and says why; a
    window chosen on purpose stays as asked."""
    long_ago = timezone.now() - timedelta(days=400)
    track = make_track("Teardrop", "Massive Attack", "Mezzanine")
    make_play(user, track, long_ago)
    make_play(user, track, long_ago + timedelta(days=1))
    _, body = _body(client, user)
    assert "Nothing was played in the last 90 days, so this is all time." in body
    assert '<p class="big" id="total-listens">2</p>' in body
    assert 'class="current" aria-current="true">All time</a>' in body
    _, body = _body(client, user, days="90")
    assert "Nothing was played" not in body
    assert '<p class="big" id="total-listens">0</p>' in body


def test_a_user_without_plays_sees_the_90_day_window(client, user):
    _, body = _body(client, user)
    assert "Nothing was played" not in body
    assert 'class="current" aria-current="true">90 days</a>' in body


def test_the_heatmap_shows_listens_by_weekday_and_hour(client, user, history):
    response, body = _body(client, user)
    rows = {weekday: cells for weekday, cells, _ in response.context["report"].heat_rows}
    assert [c.listens for c in rows["Tuesday"] if c.listens] == [2, 3]
    assert rows["Tuesday"][20].listens == 3 and rows["Tuesday"][20].level == 5
    assert rows["Tuesday"][8].listens == 2
    assert sum(c.listens for c in rows["Monday"]) == 0
    assert 'title="Tuesday 20:00, 3 listens">3</td>' in body
    assert '<th scope="row">Tue</th>' in body


def test_top_lists_rank_artists_tracks_and_albums(client, user, history):
    _, body = _body(client, user)
    artists = body.split('id="top-artists"')[1].split("</section>")[0]
    assert artists.index("Radiohead") < artists.index("Massive Attack")
    assert (
        '<span class="bar-label">Radiohead</span><span class="bar-value">3 · 60.0%</span>' in body
    )
    assert '<rect class="bar" width="100.0" height="6">' in artists
    assert '<rect class="bar" width="66.7" height="6">' in artists
    tracks = body.split('id="top-tracks"')[1].split("</section>")[0]
    assert 'Paranoid Android — Radiohead</span><span class="bar-value">2</span>' in tracks
    albums = body.split('id="top-albums"')[1].split("</section>")[0]
    assert 'OK Computer — Radiohead</span><span class="bar-value">3</span>' in albums


def test_another_users_plays_are_never_counted(client, other_user, user, history):
    _, body = _body(client, other_user)
    assert '<p class="big" id="total-listens">9</p>' in body
    assert "Radiohead" not in body and "Paranoid Android" not in body


def test_the_window_picker_widens_to_365_days_and_all_time(client, user, history):
    _, body = _body(client, user, days="365")
    assert '<p class="big" id="total-listens">6</p>' in body
    assert 'class="current" aria-current="true">365 days</a>' in body
    _, body = _body(client, user, days="0")
    assert '<p class="big" id="total-listens">6</p>' in body
    assert "All time, in UTC." in body


def test_custom_dates_are_inclusive_local_days(client, user, history):
    tuesday = max(d for d in (history - timedelta(days=i) for i in range(1, 8)) if d.weekday() == 1)
    week1 = tuesday - timedelta(weeks=1)
    _, body = _body(client, user, start=week1.isoformat(), end=week1.isoformat())
    assert '<p class="big" id="total-listens">1</p>' in body
    assert "Paranoid Android" in body and "Teardrop" not in body


def test_a_reversed_custom_window_says_so(client, user, history):
    _, body = _body(client, user, start="2025-02-01", end="2025-01-01")
    assert "The start date is after the end date." in body
    assert '<p class="big" id="total-listens">5</p>' in body


def test_an_empty_window_says_where_the_data_is_in_words_for_people(client, user, history):
    _, body = _body(client, user, start="2020-01-01", end="2020-01-31")
    tuesday = history - timedelta(days=(history.weekday() - 1) % 7 or 7)
    first, last = (tuesday - timedelta(weeks=weeks) for weeks in (30, 1))
    assert (
        f"No plays in this window. Your data runs from {first.day} {first:%b %Y} to "
        f"{last.day} {last:%b %Y}; pick other dates, or All time."
    ) in body
    assert "days=0 is all time" not in body
    # A gap inside the data is told the same way: the dates are not outside it.
    gap = first + timedelta(days=1)
    _, inside = _body(client, user, start=gap.isoformat(), end=gap.isoformat())
    assert f"No plays in this window. Your data runs from {first.day} {first:%b %Y}" in inside


def test_the_zone_moves_the_heatmap(client, user, history):
    user.timezone = "Asia/Tokyo"
    user.save()
    response, body = _body(client, user)
    rows = {weekday: cells for weekday, cells, _ in response.context["report"].heat_rows}
    # 20:00 UTC on a Tuesday is 05:00 on Wednesday in Tokyo
    assert rows["Wednesday"][5].listens == 3
    assert "in Asia/Tokyo." in body


def test_the_timeline_marks_empty_days_as_gaps(client, user, history):
    response, body = _body(client, user, days="30")
    columns = response.context["report"].timeline_columns
    assert len(columns) == 30
    assert sum(c.value for c in columns) == 3
    assert sum(1 for c in columns if c.empty) == 27
    assert '<rect class="gap"' in body and ": no listens</title>" in body


def test_podcasts_appear_only_when_there_are_some(client, user, history, make_track, make_play):
    _, body = _body(client, user)
    assert 'id="podcasts"' not in body
    episode = make_track(
        "Episode 12", "", "The Show", kind=Track.Kind.EPISODE, uri="spotify:episode:e12"
    )
    make_play(user, episode, timezone.now() - timedelta(days=1), ms_played=1_800_000)
    _, body = _body(client, user)
    assert 'id="podcasts"' in body
    assert "1 episode play, 30 minutes." in body
    assert "The Show" in body
    assert 'id="audiobooks"' not in body


def test_audiobooks_appear_under_their_books(client, user, history, make_track, make_play):
    chapter = make_track(
        "Chapter 3", "", "The Book", kind=Track.Kind.CHAPTER, uri="spotify:chapter:c3"
    )
    make_play(user, chapter, timezone.now() - timedelta(days=1), ms_played=2_400_000)
    _, body = _body(client, user)
    assert "<h2>Podcasts and audiobooks</h2>" in body
    assert "episode play" not in body
    assert (
        '<ol class="plain" id="audiobooks"><li>The Book <span class="muted">(40 min, 1 chapter)'
        in body
    )


def test_repeat_rate_and_discoveries(client, user, history):
    _, body = _body(client, user)
    # 5 listens over 3 tracks
    assert '<dd id="repeat-rate">1.67 listens per track</dd>' in body
    assert '<strong id="discovered-count">1</strong> artist heard for the first time' in body


def test_the_page_sums_the_window_once_and_shows_the_same_numbers(client, user, history):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.history import selectors

    with CaptureQueriesContext(connection) as queries:
        response, _ = _body(client, user, days=365)
    per_track = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("WITH t(")]
    # One roll-up per (artist, album) with the ranked tracks, shared by the summary, the albums
    # and the repeat rate; one of the podcast episodes and one of the audiobook chapters.
    assert len(per_track) == 3
    music = """"history_play"."kind" = 'music'"""
    assert sum(music in sql for sql in per_track) == 1
    report = response.context["report"]
    window = selectors.resolve_window(user=user, days=365)
    alone = selectors.repeat_rate(user=user, window=window, limit=10)
    assert (report.repeat.listens, report.repeat.unique_tracks) == (6, 3)
    assert report.repeat.most_replayed == alone.most_replayed
    assert report.repeat.coverage == alone.coverage
    assert report.summary.totals == selectors.taste_summary(user=user, window=window).totals
