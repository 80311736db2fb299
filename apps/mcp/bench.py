"""`manage.py bench tools`: every history tool's latency at a million plays.

The data: one heavy user with 1 000 000 plays over ten years among ten users with 3 000 000 plays
in all (`--quick`: a tenth). The catalogue (artists, albums, tracks, podcast shows) is created
through `apps.music.services.resolve_tracks`, as imports do; the plays are loaded with
PostgreSQL's COPY (the portable path inserts in batches), then ANALYZE. Tastes drift year by
year, about 15% of plays are short, 3% are podcast episodes and the last two years carry API
plays with unknown duration, so every rule the tools apply has work to do.

For each tool, two windows (the last 90 days, and all time) are called 20 times through the
service layer (`apps.mcp.tools.call`) and 20 times over HTTP (`/api/tools/<name>` with a Bearer
token, in-process), and the median and p95 are printed against the targets.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.test import Client, override_settings
from django.utils import timezone

from apps.accounts.models import User
from apps.history import totals
from apps.history.models import Play
from apps.mcp import tools
from apps.mcp.services import create_token
from apps.music.models import Source, Track
from apps.music.services import TrackInfo, resolve_tracks

CALLS = 20
YEARS = 10
TARGET_90_MS = 50
TARGET_ALL_MS = 100
TARGET_SUMMARY_ALL_MS = 250
COLUMNS = (
    "user_id",
    "track_id",
    "played_at",
    "ms_played",
    "source",
    "reason_start",
    "reason_end",
    "skipped",
    "shuffle",
    "offline",
    "platform",
    "conn_country",
    "user_agent",
    "export_username",
    "created_at",
)


def _catalogue(rng: random.Random, artists: int, tracks: int) -> tuple[list[int], list[int]]:
    """Music track ids (popularity order) and podcast episode ids, created like imports do."""
    infos = []
    for i in range(tracks):
        artist = i % artists
        infos.append(
            TrackInfo(
                name=f"Track {i} {rng.choice(['Blue', 'Night', 'Gold', 'Rain', 'Fire'])}",
                artist_name=f"Artist {artist}",
                album_name=f"Album {artist}-{i // (artists * 10)}",
                uri=f"spotify:track:bench{i:07d}",
                duration_ms=rng.randint(120_000, 320_000),
            )
        )
    music: list[int] = []
    for start in range(0, len(infos), 5000):
        music += resolve_tracks(infos[start : start + 5000], source=Source.EXPORT_EXTENDED)
    episodes = [
        TrackInfo(
            name=f"Episode {i}",
            album_name=f"Show {i % 12}",
            uri=f"spotify:episode:bench{i:05d}",
            kind=Track.Kind.EPISODE,
            duration_ms=rng.randint(1_200_000, 4_000_000),
        )
        for i in range(600)
    ]
    return music, resolve_tracks(episodes, source=Source.EXPORT_EXTENDED)


# Plays by local hour (evenings heavy), as weights.
HOURS = [2, 1, 1, 1, 1, 2, 4, 7, 9, 8, 7, 7, 8, 7, 7, 8, 9, 10, 11, 12, 12, 10, 7, 4]


def _plays(
    rng: random.Random,
    user_id: int,
    count: int,
    music: list[int],
    episodes: list[int],
    end: datetime,
) -> Iterator[tuple[Any, ...]]:
    start = end - timedelta(days=365 * YEARS)
    span_days = (end - start).days
    weights = [1 / (rank + 10) ** 1.1 for rank in range(len(music))]
    cum = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    api_from = end - timedelta(days=730)
    now = timezone.now()
    seen: set[tuple[int, datetime]] = set()
    days = rng.choices(range(span_days), k=count)
    hours = rng.choices(range(24), weights=HOURS, k=count)
    picks = rng.choices(range(len(music)), cum_weights=cum, k=count)
    for day, hour, pick in zip(days, hours, picks, strict=True):
        played_at = start + timedelta(
            days=day,
            hours=hour,
            seconds=rng.randrange(3600),
            microseconds=rng.randrange(1000) * 1000,
        )
        if rng.random() < 0.03:
            track = rng.choice(episodes)
        else:
            # Tastes drift: each year shifts which tracks are popular.
            track = music[(pick + (day // 365) * 997) % len(music)]
        if (track, played_at) in seen:
            continue
        seen.add((track, played_at))
        short = rng.random() < 0.15
        if played_at >= api_from and rng.random() < 0.3:
            source, ms = Source.API.value, None
        else:
            source = Source.EXPORT_EXTENDED.value
            ms = rng.randint(1_000, 29_000) if short else rng.randint(60_000, 300_000)
        yield (
            user_id,
            track,
            played_at,
            ms,
            source,
            "trackdone",
            "endplay" if short else "trackdone",
            short,
            False,
            False,
            "android",
            "FR",
            "",
            "",
            now,
        )


def _load(rows: Iterator[tuple[Any, ...]]) -> int:
    """COPY on PostgreSQL; batched bulk inserts elsewhere."""
    n = 0
    if connection.vendor == "postgresql":
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY history_play ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
                n += 1
        return n
    batch: list[Play] = []
    for row in rows:
        batch.append(Play(**dict(zip(COLUMNS, row, strict=True))))
        if len(batch) == 10_000:
            n += len(Play.objects.bulk_create(batch))
            batch = []
    return n + len(Play.objects.bulk_create(batch))


def build(*, heavy: int, total: int, users: int, seed: int = 5) -> User:
    rng = random.Random(seed)
    end = datetime.combine(timezone.now().date(), datetime.min.time(), tzinfo=UTC)
    with transaction.atomic():
        music, episodes = _catalogue(
            rng, artists=max(200, heavy // 200), tracks=max(2000, heavy // 16)
        )
        people = [
            User.objects.create_user(username=f"bench{i}", password=None, timezone="Europe/Paris")
            for i in range(users)
        ]
        for i, person in enumerate(people):
            count = heavy if i == 0 else (total - heavy) // (users - 1)
            _load(_plays(rng, person.pk, count, music, episodes, end))
    for person in people:
        totals.refresh_best_days(person.pk)  # as the worker does after an import
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE history_play")
            cursor.execute("ANALYZE music_track")
            cursor.execute("ANALYZE music_artist")
            cursor.execute("ANALYZE music_album")
    return people[0]


def _timed(func: Callable[[], Any]) -> tuple[float, float]:
    samples = []
    for _ in range(CALLS):
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def cases(today: date) -> list[tuple[str, str, dict[str, Any]]]:
    """(tool, window label, args) for the 90-day and all-time windows."""
    a90 = {"b_start": str(today - timedelta(days=89)), "b_end": str(today)}
    a90 |= {"a_start": str(today - timedelta(days=179)), "a_end": str(today - timedelta(days=90))}
    half = today - timedelta(days=365 * YEARS // 2)
    all_time = {
        "a_start": str(today - timedelta(days=365 * YEARS + 1)),
        "a_end": str(half),
        "b_start": str(half + timedelta(days=1)),
        "b_end": str(today),
    }
    result: list[tuple[str, str, dict[str, Any]]] = []
    for name in tools.TOOLS:
        if not name.startswith("history_"):
            continue
        if name == "history_compare_periods":
            result += [(name, "90 days", a90), (name, "all time", all_time)]
            continue
        extra: dict[str, Any] = {"query": "artist 3"} if name == "history_entity_stats" else {}
        if name == "history_timeline":
            result += [
                (name, "90 days", {"days": 90, "granularity": "day"}),
                (name, "all time", {"days": 0, "granularity": "week"}),
            ]
            continue
        result += [
            (name, "90 days", {"days": 90, **extra}),
            (name, "all time", {"days": 0, **extra}),
        ]
    return result


def target(name: str, label: str) -> int:
    if label == "90 days":
        return TARGET_90_MS
    return TARGET_SUMMARY_ALL_MS if name == "history_taste_summary" else TARGET_ALL_MS


def run(*, out: Any, options: dict[str, Any]) -> None:
    quick = options.get("quick", False)
    heavy, total, users = (100_000, 300_000, 10) if quick else (1_000_000, 3_000_000, 10)
    out.write(f"Loading {total:,} plays for {users} users ({heavy:,} for the heavy user)…")
    started = time.perf_counter()
    user = build(heavy=heavy, total=total, users=users)
    elapsed = time.perf_counter() - started
    out.write(f"Loaded {Play.objects.count():,} plays in {elapsed:.1f} s.")
    _, token = create_token(user=user, name="bench")
    client = Client()
    auth = {"Authorization": f"Bearer {token}"}
    today = timezone.now().astimezone(user.tzinfo).date()
    out.write(
        f"{'tool':<28} {'window':<9} {'service p50':>11} {'p95':>7} {'HTTP p50':>9} {'p95':>7}"
        f" {'target':>7}"
    )
    missed = []
    hosts = [*settings.ALLOWED_HOSTS, "testserver"]
    with override_settings(TOOLS_RATE_LIMIT="1000000/min", ALLOWED_HOSTS=hosts):
        check = client.get("/api/tools/history_coverage", {"days": 0}, headers=auth)
        assert check.status_code == 200, check.content[:500]
        for name, label, args in cases(today):
            tools.call(name, caller=user, args=args)  # warm up
            s50, s95 = _timed(partial(tools.call, name, caller=user, args=args))
            h50, h95 = _timed(partial(client.get, f"/api/tools/{name}", args, headers=auth))
            goal = target(name, label)
            flag = "" if s50 <= goal else "  MISSED"
            if flag:
                missed.append(f"{name} ({label})")
            out.write(
                f"{name:<28} {label:<9} {s50:>9.1f}ms {s95:>5.1f}ms {h50:>7.1f}ms {h95:>5.1f}ms"
                f" {goal:>5}ms{flag}"
            )
    out.write(f"Targets missed: {', '.join(missed) if missed else 'none'}.")
