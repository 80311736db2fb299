"""The analytics report behind the site's analytics page and the admin's per-user page.

Every number comes from `apps.history.selectors`, the functions the assistant tools call; this
module only picks which ones to show and turns their results into chart geometry (plain numbers
a template writes into SVG attributes, so the page needs no script and no inline style).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.http import QueryDict

from apps.accounts.forms import WindowForm
from apps.accounts.models import User
from apps.history import selectors
from apps.history.selectors import Window

# The picker's preset windows, in days (0 = all time).
PRESETS: list[tuple[int, str]] = [
    (30, "30 days"),
    (90, "90 days"),
    (365, "365 days"),
    (0, "All time"),
]
# The window the page opens on, in days.
DEFAULT_DAYS = 90
TOP_LIMIT = 10
HEAT_LEVELS = 5


@dataclass(frozen=True, slots=True)
class Bar:
    """One horizontal bar: its label, value text, and width as a percentage of the longest."""

    label: str
    detail: str
    value: float
    pct: float


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the timeline chart, in SVG user units."""

    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    empty: bool


@dataclass(frozen=True, slots=True)
class HeatCell:
    hour: int
    listens: int
    level: int


@dataclass(slots=True)
class Report:
    window: Window
    summary: selectors.TasteSummary
    heatmap: selectors.Heatmap
    heat_rows: list[tuple[str, list[HeatCell], int]]
    top_artists: list[Bar]
    top_tracks: list[Bar]
    top_albums: list[Bar]
    repeat: selectors.RepeatRate
    timeline: selectors.Timeline
    timeline_columns: list[Column]
    podcasts: selectors.TopPodcasts | None


CHART_WIDTH = 600
CHART_HEIGHT = 160


def bars(items: list[tuple[str, str, float]]) -> list[Bar]:
    """(label, detail, value) rows as bars scaled to the largest value."""
    top = max((value for _, _, value in items), default=0) or 1
    return [
        Bar(
            label=label,
            detail=detail,
            value=value,
            pct=round(100 * value / top, 1),
        )
        for label, detail, value in items
    ]


def columns(periods: list[selectors.Period], granularity: str) -> list[Column]:
    """Timeline periods as columns across CHART_WIDTH; empty periods are marked as gaps."""
    if not periods:
        return []
    top = max(p.listens for p in periods) or 1
    width = CHART_WIDTH / len(periods)
    fmt = {"day": "%Y-%m-%d", "week": "week of %Y-%m-%d", "month": "%b %Y"}[granularity]
    result = []
    for i, period in enumerate(periods):
        height = round(CHART_HEIGHT * period.listens / top, 2)
        result.append(
            Column(
                label=period.start.strftime(fmt),
                value=period.listens,
                x=round(i * width, 2),
                y=round(CHART_HEIGHT - height, 2),
                width=round(max(width - (1 if width > 3 else 0), 0.5), 2),
                height=height,
                empty=period.listens == 0,
            )
        )
    return result


def heat_level(value: int, top: int) -> int:
    """0 for none, then 1..HEAT_LEVELS by share of the busiest hour."""
    if value <= 0 or top <= 0:
        return 0
    return max(1, min(HEAT_LEVELS, -(-value * HEAT_LEVELS // top)))


def heat_rows(heatmap: selectors.Heatmap) -> list[tuple[str, list[HeatCell], int]]:
    top = max((max(row) for row in heatmap.matrix), default=0)
    return [
        (
            weekday,
            [HeatCell(hour=h, listens=n, level=heat_level(n, top)) for h, n in enumerate(row)],
            total,
        )
        for weekday, row, total in zip(
            heatmap.weekdays, heatmap.matrix, heatmap.weekday_totals, strict=True
        )
    ]


def granularity_for(window: Window, first_play: date | None) -> selectors.Granularity:
    """Days for up to about three months, weeks for up to two years, months beyond."""
    start = window.start_date or first_play
    end = window.end_date or window.today
    span = (end - start).days + 1 if start else 0
    if span <= 93:
        return "day"
    if span <= 731:
        return "week"
    return "month"


def report(*, user: User, window: Window) -> Report:
    with selectors.shared_reads():  # one read of the per-track sums and days for every chart
        # Every part of the window's read the charts show, named before the first of them reads.
        selectors.counted(user, window, selectors.Rule.default(), parts=selectors.PARTS)
        summary = selectors.taste_summary(user=user, window=window)
        heatmap = selectors.listening_heatmap(user=user, window=window)
        albums = selectors.top_albums(user=user, window=window, limit=TOP_LIMIT)
        repeat = selectors.repeat_rate(user=user, window=window, limit=TOP_LIMIT)
        first = summary.coverage.first_play
        first_day = first.astimezone(window.tz).date() if first else None
        granularity = granularity_for(window, first_day)
        timeline = selectors.timeline(user=user, window=window, granularity=granularity)
        podcasts = selectors.top_podcasts(user=user, window=window, limit=TOP_LIMIT)
    return Report(
        window=window,
        summary=summary,
        heatmap=heatmap,
        heat_rows=heat_rows(heatmap),
        top_artists=bars(
            [(a.name, f"{a.listens} · {a.share_pct}%", a.listens) for a in summary.top_artists]
        ),
        top_tracks=bars(
            [
                (f"{t.name} — {t.artist}" if t.artist else t.name, f"{t.listens}", t.listens)
                for t in summary.top_tracks
            ]
        ),
        top_albums=bars(
            [
                (f"{a.name} — {a.artist}" if a.artist else a.name, f"{a.listens}", a.listens)
                for a in albums.albums
            ]
        ),
        repeat=repeat,
        timeline=timeline,
        timeline_columns=columns(timeline.periods, granularity),
        podcasts=podcasts if podcasts.plays or podcasts.audiobooks else None,
    )


@dataclass(slots=True)
class History:
    """All-time coverage and the plays-per-month timeline, for the dashboard."""

    coverage: selectors.Coverage
    timeline: selectors.Timeline
    columns: list[Column]


def history(*, user: User) -> History:
    window = selectors.resolve_window(user=user, days=0)
    with selectors.shared_reads():
        timeline = selectors.timeline(user=user, window=window, granularity="month")
        coverage = selectors.coverage(user=user, window=window)
    return History(coverage=coverage, timeline=timeline, columns=columns(timeline.periods, "month"))


def page_context(query: QueryDict, *, user: User) -> dict[str, object]:
    """The window picker and the report for `user`, over the window the query string asks for
    (`days`, or `start`/`end`); a bad window falls back to 90 days and says why. With no choice
    made, it is the last 90 days, or all time when nothing was played in them (an export's
    history that ended months ago), and the page says so."""
    form = WindowForm(query or None)
    days, start, end = DEFAULT_DAYS, None, None
    if form.is_bound and form.is_valid():
        days = form.cleaned_data["days"]
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    window_error = window_notice = ""
    try:
        window = selectors.resolve_window(user=user, days=days, start=start, end=end)
    except selectors.QueryError as exc:
        window_error = str(exc)
        window = selectors.resolve_window(user=user, days=DEFAULT_DAYS)
        start = end = None
    if not form.is_bound and not selectors.window_plays(user, window).exists():
        everything = selectors.resolve_window(user=user, days=0)
        if selectors.window_plays(user, everything).exists():
            days, window = 0, everything
            window_notice = (
                f"Nothing was played in the last {DEFAULT_DAYS} days, so this is all time."
            )
    return {
        "form": form,
        "presets": PRESETS,
        "current_days": days,
        "custom": bool(start or end),
        "window_error": window_error,
        "window_notice": window_notice,
        "report": report(user=user, window=window),
    }
