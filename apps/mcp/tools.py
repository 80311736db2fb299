"""The one tool registry: each tool is defined once here and served by MCP (`/mcp`), REST for
ChatGPT Actions (`/api/tools/<name>`), the generic `/mcp/call` and `manage.py call_tool`.

A definition is a name, a title, a description (at most 300 characters), a msgspec Struct of
parameters (bounds, enums and descriptions in `msgspec.Meta`) and a Struct result type. The MCP
input/output schemas, the OpenAPI parameters and response schemas all come from those Structs.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import msgspec
from django.db.models import Min
from django.utils import timezone

from apps.history import selectors
from apps.history.models import Play
from apps.history.selectors import QueryError
from apps.imports.models import ImportJob

if TYPE_CHECKING:
    from apps.accounts.models import User


class ToolError(Exception):
    """A call the tool can't answer as asked; the message tells the caller what to change."""


# --- Parameters ---------------------------------------------------------------------------------

Days = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        le=36500,
        description="Window length in days, ending today in the zone (0 = all time). "
        "Ignored when start or end is given.",
    ),
]
Start = Annotated[
    date | None,
    msgspec.Meta(description="First day of the window (YYYY-MM-DD, inclusive, in the zone)."),
]
End = Annotated[
    date | None,
    msgspec.Meta(description="Last day of the window (YYYY-MM-DD, inclusive, in the zone)."),
]
Tz = (
    Annotated[
        str,
        msgspec.Meta(
            max_length=64,
            description="IANA time zone for day boundaries, weekdays and hours, e.g. "
            "Europe/Paris. Default: the user's zone.",
        ),
    ]
    | None
)
IncludeShort = Annotated[
    bool,
    msgspec.Meta(
        description="Count plays shorter than the listen threshold (30 s) too. Default false."
    ),
]
Limit = Annotated[int, msgspec.Meta(ge=1, le=50, description="How many items (1-50).")]
AsUser = (
    Annotated[
        str,
        msgspec.Meta(
            max_length=150,
            description="Staff only: the username to answer for. Default: the token's own user.",
        ),
    ]
    | None
)


class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    user: AsUser = None


class WindowParams(Params, kw_only=True, forbid_unknown_fields=True):
    days: Days = 90
    start: Start = None
    end: End = None
    tz: Tz = None
    include_short: IncludeShort = False


class RankParams(WindowParams, kw_only=True, forbid_unknown_fields=True):
    limit: Limit = 10


class TimelineParams(WindowParams, kw_only=True, forbid_unknown_fields=True):
    granularity: Annotated[
        Literal["day", "week", "month"],
        msgspec.Meta(description="Period length: day, week (Monday first) or month."),
    ] = "day"


class EntityParams(RankParams, kw_only=True, forbid_unknown_fields=True):
    query: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=200,
            description="Artist or track name; accents and case are ignored.",
        ),
    ]
    type: Annotated[
        Literal["artist", "track"], msgspec.Meta(description="What the query names.")
    ] = "artist"
    days: Days = 0


class CompareParams(Params, kw_only=True, forbid_unknown_fields=True):
    a_start: Annotated[date, msgspec.Meta(description="First day of period A (YYYY-MM-DD).")]
    a_end: Annotated[date, msgspec.Meta(description="Last day of period A (inclusive).")]
    b_start: Annotated[date, msgspec.Meta(description="First day of period B (YYYY-MM-DD).")]
    b_end: Annotated[date, msgspec.Meta(description="Last day of period B (inclusive).")]
    tz: Tz = None
    include_short: IncludeShort = False
    limit: Limit = 10


class OpsParams(Params, kw_only=True, forbid_unknown_fields=True):
    limit: Limit = 10


# --- Ops results --------------------------------------------------------------------------------


class Count(msgspec.Struct, kw_only=True):
    name: str
    value: int


class InitialSync(msgspec.Struct, kw_only=True):
    started_at: datetime | None = None
    completed_at: datetime | None = None
    stop_reason: str
    earliest_play_reached: datetime | None = None


class SyncStatus(msgspec.Struct, kw_only=True):
    connected: bool
    status: Annotated[
        str, msgspec.Meta(description="active, needs_reauth, revoked, or not_connected.")
    ]
    status_reason: str
    needs_reconnect: bool
    paused: bool
    collecting: bool
    spotify_display_name: str | None = None
    last_poll_at: datetime | None = None
    last_successful_poll_at: datetime | None = None
    newest_play_at: datetime | None = None
    consecutive_errors: int
    last_error: str
    initial_sync: InitialSync
    token_authorized_at: datetime | None = None
    token_expires_at: datetime | None = None
    token_expires_in_days: int | None = None
    app_rate_limited_until: Annotated[
        datetime | None,
        msgspec.Meta(description="While set, every Spotify call of the app waits (HTTP 429)."),
    ] = None
    as_of: datetime


class JobRunInfo(msgspec.Struct, kw_only=True):
    id: int
    type: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    counts: list[Count]
    error: str


class JobRuns(msgspec.Struct, kw_only=True):
    runs: list[JobRunInfo]
    as_of: datetime


class ImportJobInfo(msgspec.Struct, kw_only=True):
    id: int
    file: str
    status: str
    progress_pct: float
    formats: list[str]
    records_seen: int
    plays_added: int
    duplicates: int
    skipped_total: int
    skipped: list[Count]
    earliest_play: datetime | None = None
    latest_play: datetime | None = None
    created_at: datetime
    finished_at: datetime | None = None
    error: str


class ImportJobs(msgspec.Struct, kw_only=True):
    jobs: list[ImportJobInfo]
    as_of: datetime


# --- The registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    title: str
    description: str
    params: type[Params]
    result: type[msgspec.Struct]
    run: Callable[[User, Any], msgspec.Struct]
    open_world: bool = False

    @property
    def alias(self) -> str:
        """The dotted name of the original interface: history_top_artists -> history.top_artists."""
        return self.name.replace("_", ".", 1)


TOOLS: dict[str, Tool] = {}
MAX_TIMELINE_PERIODS = 400


def tool(
    name: str,
    *,
    title: str,
    description: str,
    params: type[Params],
    result: type[msgspec.Struct],
    open_world: bool = False,
) -> Callable[[Callable[[User, Any], Any]], Callable[[User, Any], Any]]:
    def register(func: Callable[[User, Any], Any]) -> Callable[[User, Any], Any]:
        assert len(description) <= 300, name
        TOOLS[name] = Tool(name, title, description, params, result, func, open_world)
        return func

    return register


def get_tool(name: str) -> Tool:
    """A tool by name, or by its dotted alias (`history.top_artists`)."""
    found = TOOLS.get(name) or next((t for t in TOOLS.values() if t.alias == name), None)
    if found is None:
        raise ToolError(f"Unknown tool {name!r}. Tools: {', '.join(TOOLS)}.")
    return found


def parse_args(tool: Tool, args: Mapping[str, Any], *, strict: bool = True) -> Params:
    """Validate arguments against the tool's parameters; strict=False reads query strings."""
    if not isinstance(args, Mapping):
        raise ToolError("args must be a JSON object.")
    try:
        return msgspec.convert(dict(args), tool.params, strict=strict)
    except msgspec.ValidationError as exc:
        raise ToolError(f"Invalid arguments: {exc}.{_hint(tool, str(exc))}") from None


def _hint(tool: Tool, message: str) -> str:
    """What the model can do about a validation error: the arguments the tool takes, or the
    values a field allows."""
    fields = {f.encode_name: f.type for f in msgspec.structs.fields(tool.params)}
    if message.startswith("Object contains unknown field"):
        return f" {tool.name} takes: {', '.join(fields)}."
    at = re.search(r"at `\$\.(\w+)`$", message)
    choices = _choices(fields[at.group(1)]) if at and at.group(1) in fields else []
    return f" Use one of: {', '.join(choices)}." if choices else ""


def _choices(kind: Any) -> list[str]:
    """The values a Literal field allows, through Annotated and Optional."""
    if typing.get_origin(kind) is Literal:
        return [str(value) for value in typing.get_args(kind)]
    if typing.get_origin(kind) in (Annotated, Union, types.UnionType):
        return [choice for arg in typing.get_args(kind) for choice in _choices(arg)]
    return []


def acting_user(caller: User, params: Params) -> User:
    """The user a call answers for: the caller, or, for staff only, the user they name."""
    from apps.accounts.models import User

    if not params.user or params.user == caller.username:
        return caller
    if not caller.is_staff:
        raise ToolError("Only staff tokens may name another user; leave `user` out.")
    try:
        return User.objects.get(username=params.user)
    except User.DoesNotExist:
        raise ToolError(f"No user named {params.user!r}.") from None


def run(tool: Tool, *, caller: User, params: Params) -> msgspec.Struct:
    """Run a tool for the caller; application errors become ToolError with their message."""
    from apps.accounts.spotify import SpotifyError

    user = acting_user(caller, params)
    try:
        with selectors.shared_reads():  # a tool's analyses read what they share once
            return tool.run(user, params)
    except (QueryError, SpotifyError) as exc:
        raise ToolError(str(exc)) from None


def call(name: str, *, caller: User, args: Mapping[str, Any], strict: bool = True) -> Any:
    """Call a tool by name with JSON arguments; the result as JSON-ready builtins."""
    found = get_tool(name)
    return msgspec.to_builtins(
        run(found, caller=caller, params=parse_args(found, args, strict=strict))
    )


def _window(user: User, p: WindowParams) -> selectors.Window:
    return selectors.resolve_window(user=user, days=p.days, start=p.start, end=p.end, tz=p.tz)


# --- History tools ------------------------------------------------------------------------------

ANSWER = " Results carry the window, zone, counting rule and a coverage note."


@tool(
    "history_taste_summary",
    title="Taste summary",
    description="Everything at a glance for a window: listens, minutes, unique tracks and "
    "artists, top 10 artists and tracks, repeat rate, peak weekday and hour, artists "
    "discovered, and how complete the data is.",
    params=WindowParams,
    result=selectors.TasteSummary,
)
def taste_summary(user: User, p: WindowParams) -> selectors.TasteSummary:
    return selectors.taste_summary(
        user=user, window=_window(user, p), include_short=p.include_short
    )


@tool(
    "history_top_artists",
    title="Top artists",
    description="The user's most played artists in a window, ranked by listens (ties by "
    "minutes), with minutes and share of listens. A play counts for the track's primary "
    "artist." + ANSWER,
    params=RankParams,
    result=selectors.TopArtists,
)
def top_artists(user: User, p: RankParams) -> selectors.TopArtists:
    return selectors.top_artists(
        user=user, window=_window(user, p), include_short=p.include_short, limit=p.limit
    )


@tool(
    "history_top_tracks",
    title="Top tracks",
    description="The user's most played tracks in a window, ranked by listens (ties by "
    "minutes), with artist, album, minutes and share of listens." + ANSWER,
    params=RankParams,
    result=selectors.TopTracks,
)
def top_tracks(user: User, p: RankParams) -> selectors.TopTracks:
    return selectors.top_tracks(
        user=user, window=_window(user, p), include_short=p.include_short, limit=p.limit
    )


@tool(
    "history_top_albums",
    title="Top albums",
    description="The user's most played albums in a window, ranked by listens, with album "
    "artist, minutes and share of listens." + ANSWER,
    params=RankParams,
    result=selectors.TopAlbums,
)
def top_albums(user: User, p: RankParams) -> selectors.TopAlbums:
    return selectors.top_albums(
        user=user, window=_window(user, p), include_short=p.include_short, limit=p.limit
    )


@tool(
    "history_listening_heatmap",
    title="Listening heatmap",
    description="When the user listens: a 7x24 matrix of listens by weekday (Monday first) "
    "and hour in their time zone (DST handled), with totals and the peak weekday and hour."
    + ANSWER,
    params=WindowParams,
    result=selectors.Heatmap,
)
def listening_heatmap(user: User, p: WindowParams) -> selectors.Heatmap:
    return selectors.listening_heatmap(
        user=user, window=_window(user, p), include_short=p.include_short
    )


@tool(
    "history_repeat_rate",
    title="Repeat rate",
    description="How much the user replays music: listens per unique track, share of listens "
    "to tracks heard more than once, the most replayed tracks and the biggest one-day repeat "
    "of a track." + ANSWER,
    params=RankParams,
    result=selectors.RepeatRate,
)
def repeat_rate(user: User, p: RankParams) -> selectors.RepeatRate:
    return selectors.repeat_rate(
        user=user, window=_window(user, p), include_short=p.include_short, limit=p.limit
    )


@tool(
    "history_coverage",
    title="Data coverage",
    description="How complete the listening data is: first and last play, days with data, "
    "gaps of 3+ days, plays by source (API, exports), short and podcast plays left out, the "
    "last successful poll, and a plain-language note.",
    params=WindowParams,
    result=selectors.Coverage,
)
def coverage(user: User, p: WindowParams) -> selectors.Coverage:
    return selectors.coverage(user=user, window=_window(user, p), include_short=p.include_short)


@tool(
    "history_top_podcasts",
    title="Top podcasts and audiobooks",
    description="The podcast shows and episodes, and the audiobooks, the user listened to most "
    "in a window, ranked by minutes. Both are left out of every music statistic." + ANSWER,
    params=RankParams,
    result=selectors.TopPodcasts,
)
def top_podcasts(user: User, p: RankParams) -> selectors.TopPodcasts:
    return selectors.top_podcasts(
        user=user, window=_window(user, p), include_short=p.include_short, limit=p.limit
    )


@tool(
    "history_entity_stats",
    title="Artist or track stats",
    description="How often the user played an artist or track found by name (accent and case "
    "ignored): listens, minutes, first and last listen, listens per year, top tracks of an "
    "artist, and other matches. All time by default.",
    params=EntityParams,
    result=selectors.EntityStats,
)
def entity_stats(user: User, p: EntityParams) -> selectors.EntityStats:
    return selectors.entity_stats(
        user=user,
        window=_window(user, p),
        query=p.query,
        type=p.type,
        include_short=p.include_short,
        limit=p.limit,
    )


@tool(
    "history_compare_periods",
    title="Compare two periods",
    description="Two date ranges side by side: listens and minutes and their change, top "
    "artists in each, artists that rose or fell in rank, and artists new in B or vanished "
    "since A.",
    params=CompareParams,
    result=selectors.ComparePeriods,
)
def compare_periods(user: User, p: CompareParams) -> selectors.ComparePeriods:
    a = selectors.resolve_window(user=user, start=p.a_start, end=p.a_end, tz=p.tz)
    b = selectors.resolve_window(user=user, start=p.b_start, end=p.b_end, tz=p.tz)
    return selectors.compare_periods(
        user=user, a=a, b=b, include_short=p.include_short, limit=p.limit
    )


@tool(
    "history_timeline",
    title="Listening timeline",
    description="Listens and minutes per day, week or month in a window, empty periods "
    "included, in the user's time zone. Use week or month for windows over 400 days." + ANSWER,
    params=TimelineParams,
    result=selectors.Timeline,
)
def timeline(user: User, p: TimelineParams) -> selectors.Timeline:
    window = _window(user, p)
    if p.granularity == "day":
        start = window.start_date
        if start is None:
            first = Play.objects.for_user(user).aggregate(first=Min("played_at"))["first"]
            start = first.astimezone(window.tz).date() if first else window.today
        days = ((window.end_date or window.today) - start).days + 1
        if days > MAX_TIMELINE_PERIODS:
            raise ToolError(
                f"That is {days} days: use granularity week or month for windows over "
                f"{MAX_TIMELINE_PERIODS} days."
            )
    return selectors.timeline(
        user=user, window=window, granularity=p.granularity, include_short=p.include_short
    )


# --- Ops tools ----------------------------------------------------------------------------------


def _counts(values: Mapping[str, Any]) -> list[Count]:
    return [
        Count(name=str(key), value=int(value))
        for key, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]


@tool(
    "ops_latest_job_runs",
    title="Recent background jobs",
    description="The user's most recent background jobs (polls, initial syncs, imports, "
    "resolve passes), newest first, with status, counts, duration and any error.",
    params=OpsParams,
    result=JobRuns,
)
def latest_job_runs(user: User, p: OpsParams) -> JobRuns:
    return JobRuns(
        runs=[
            JobRunInfo(
                id=run.pk,
                type=run.type,
                status=run.status,
                started_at=run.started_at,
                finished_at=run.finished_at,
                duration_seconds=run.duration_seconds,
                counts=_counts(run.counts or {}),
                error=run.error,
            )
            for run in selectors.latest_job_runs(user=user, limit=p.limit)
        ],
        as_of=timezone.now(),
    )


@tool(
    "ops_latest_import_jobs",
    title="Recent imports",
    description="The user's most recent Spotify export imports, newest first: status, "
    "progress, formats found, records seen, plays added, duplicates, skipped records by "
    "reason, the span of plays, and any error.",
    params=OpsParams,
    result=ImportJobs,
)
def latest_import_jobs(user: User, p: OpsParams) -> ImportJobs:
    jobs = ImportJob.objects.filter(user=user).order_by("-created_at", "-pk")[: p.limit]
    return ImportJobs(
        jobs=[
            ImportJobInfo(
                id=job.pk,
                file=job.original_name,
                status=job.status,
                progress_pct=job.progress_pct,
                formats=[str(f) for f in job.formats or []],
                records_seen=job.records_seen,
                plays_added=job.plays_added,
                duplicates=job.duplicates,
                skipped_total=job.skipped_total,
                skipped=_counts(job.skipped or {}),
                earliest_play=job.earliest_play,
                latest_play=job.latest_play,
                created_at=job.created_at,
                finished_at=job.finished_at,
                error=job.error,
            )
            for job in jobs
        ],
        as_of=timezone.now(),
    )


# --- Live Spotify tools and sync status (through the one Spotify client) -----------------------


class SpotifyTopParams(Params, kw_only=True, forbid_unknown_fields=True):
    entity: Annotated[
        Literal["artists", "tracks"], msgspec.Meta(description="Top artists or top tracks.")
    ] = "artists"
    time_range: Annotated[
        Literal["short_term", "medium_term", "long_term"],
        msgspec.Meta(
            description="Spotify's windows: short_term (about 4 weeks), medium_term (about 6 "
            "months) or long_term (about a year)."
        ),
    ] = "medium_term"
    limit: Limit = 10


class SpotifySearchParams(Params, kw_only=True, forbid_unknown_fields=True):
    q: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="What to search for.")]
    type: Annotated[
        Literal["track", "artist", "album", "playlist", "show", "episode", "audiobook"],
        msgspec.Meta(description="The kind of item to find."),
    ] = "track"
    limit: Annotated[int, msgspec.Meta(ge=1, le=10, description="How many results (1-10).")] = 5


class SpotifyItem(msgspec.Struct, kw_only=True):
    rank: int
    name: str
    type: str
    spotify_uri: str | None = None
    artists: list[str]
    album: str | None = None
    genres: list[str]
    popularity: int | None = None
    url: str | None = None


class SpotifyTop(msgspec.Struct, kw_only=True):
    entity: str
    time_range: str
    items: list[SpotifyItem]
    source: str
    as_of: datetime


class SpotifySearch(msgspec.Struct, kw_only=True):
    q: str
    type: str
    items: list[SpotifyItem]
    as_of: datetime


def _spotify_items(items: list[Any], kind: str) -> list[SpotifyItem]:
    found: list[SpotifyItem] = []
    for item in items:
        if not isinstance(item, dict):
            continue  # Spotify search pages may hold nulls
        album = item.get("album") if isinstance(item.get("album"), dict) else None
        show = item.get("show") if isinstance(item.get("show"), dict) else None
        owner = item.get("owner") if isinstance(item.get("owner"), dict) else None
        artists = [a.get("name", "") for a in item.get("artists") or [] if isinstance(a, dict)]
        if not artists and owner:
            artists = [owner.get("display_name") or owner.get("id") or ""]
        found.append(
            SpotifyItem(
                rank=len(found) + 1,
                name=str(item.get("name") or ""),
                type=str(item.get("type") or kind),
                spotify_uri=item.get("uri"),
                artists=[a for a in artists if a],
                album=(album or show or {}).get("name"),
                genres=[str(g) for g in item.get("genres") or []],
                popularity=item.get("popularity"),
                url=(item.get("external_urls") or {}).get("spotify"),
            )
        )
    return found


@tool(
    "spotify_get_top",
    title="Spotify's top items",
    description="Spotify's own ranking of the user's top artists or tracks over about 4 weeks, "
    "6 months or a year, fetched live from Spotify. For counts from the stored history, use "
    "history_top_artists or history_top_tracks.",
    params=SpotifyTopParams,
    result=SpotifyTop,
    open_world=True,
)
def spotify_get_top(user: User, p: SpotifyTopParams) -> SpotifyTop:
    from apps.accounts import spotify

    page = spotify.get_top(
        account=spotify.account_for(user), kind=p.entity, time_range=p.time_range, limit=p.limit
    )
    return SpotifyTop(
        entity=p.entity,
        time_range=p.time_range,
        items=_spotify_items(page.get("items") or [], p.entity[:-1]),
        source="Spotify Web API, live",
        as_of=timezone.now(),
    )


@tool(
    "spotify_search",
    title="Search Spotify",
    description="Search Spotify's catalogue live for tracks, artists, albums, playlists, shows, "
    "episodes or audiobooks (at most 10 results), with names, artists and Spotify URIs.",
    params=SpotifySearchParams,
    result=SpotifySearch,
    open_world=True,
)
def spotify_search(user: User, p: SpotifySearchParams) -> SpotifySearch:
    from apps.accounts import spotify

    page = spotify.search(account=spotify.account_for(user), q=p.q, types=[p.type], limit=p.limit)
    section = page.get(f"{p.type}s") or {}
    return SpotifySearch(
        q=p.q,
        type=p.type,
        items=_spotify_items(section.get("items") or [], p.type),
        as_of=timezone.now(),
    )


@tool(
    "ops_sync_status",
    title="Sync status",
    description="The user's Spotify connection and collection state: connected or needing "
    "reconnection, paused, last poll and errors, initial sync result, days until the Spotify "
    "token expires, and any app-wide Spotify rate-limit pause.",
    params=Params,
    result=SyncStatus,
)
def sync_status(user: User, p: Params) -> SyncStatus:
    from apps.accounts import spotify
    from apps.accounts.models import SpotifyAccount
    from apps.history.models import SyncCheckpoint

    account = SpotifyAccount.objects.filter(user=user).first()
    checkpoint = SyncCheckpoint.objects.filter(user=user).first()
    return SyncStatus(
        connected=account is not None,
        status=account.status if account else "not_connected",
        status_reason=account.status_reason if account else "",
        needs_reconnect=bool(account and account.needs_reauth),
        paused=bool(account and account.paused),
        collecting=bool(account and account.is_collecting),
        spotify_display_name=(account.display_name or account.spotify_id) if account else None,
        last_poll_at=checkpoint.last_poll_at if checkpoint else None,
        last_successful_poll_at=checkpoint.last_success_at if checkpoint else None,
        newest_play_at=checkpoint.newest_played_at if checkpoint else None,
        consecutive_errors=checkpoint.consecutive_errors if checkpoint else 0,
        last_error=checkpoint.last_error if checkpoint else "",
        initial_sync=InitialSync(
            started_at=checkpoint.initial_sync_started_at if checkpoint else None,
            completed_at=checkpoint.initial_sync_completed_at if checkpoint else None,
            stop_reason=checkpoint.initial_sync_stop_reason if checkpoint else "",
            earliest_play_reached=checkpoint.earliest_played_at if checkpoint else None,
        ),
        token_authorized_at=account.authorized_at if account else None,
        token_expires_at=account.refresh_expires_at if account else None,
        token_expires_in_days=account.days_until_refresh_expiry() if account else None,
        app_rate_limited_until=spotify.rate_limit_pause(),
        as_of=timezone.now(),
    )
