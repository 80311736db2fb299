"""`manage.py bench tools`: every history tool's latency at a million plays.

The data: one heavy user with 1 000 000 plays over ten years among ten users with 3 000 000 plays
in all (`--quick`: a tenth). The catalogue (artists, albums, tracks, podcast shows) is created
by the imports. Each person's plays go in the way users' plays do: the export's as an Extended
Streaming History ZIP through the import (`apps.imports.services.run_import`), then the API's
through the bulk insert polls use; then VACUUM ANALYZE. Tastes drift year by year, about 15% of
plays are short, 3% are podcast episodes and the last two years carry API plays with unknown
duration, so every rule the tools apply has work to do.

For each tool, two windows (the last 90 days, and all time) are called 20 times through the
service layer (`apps.mcp.tools.call`) and 20 times over HTTP (`/api/tools/<name>` with a Bearer
token, in-process), and the median and p95 are printed against the targets.
"""

from __future__ import annotations

import gc
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from apps.accounts.models import User
from apps.history import totals
from apps.history.ingest import PlayRecord, insert_plays
from apps.history.models import Play
from apps.imports import services
from apps.imports.bench import empty_database
from apps.imports.demo import extended_record, write_export
from apps.imports.models import ImportJob
from apps.mcp import tools
from apps.mcp.services import create_token
from apps.music.models import Source, Track
from apps.music.services import TrackInfo

CALLS = 20
YEARS = 10
TARGET_90_MS = 50
TARGET_ALL_MS = 100
TARGET_SUMMARY_ALL_MS = 250


def _catalogue(
    rng: random.Random, artists: int, tracks: int
) -> tuple[list[TrackInfo], list[TrackInfo]]:
    """The music tracks (popularity order) and podcast episodes the plays pick from."""
    music = []
    for i in range(tracks):
        artist = i % artists
        music.append(
            TrackInfo(
                name=f"Track {i} {rng.choice(['Blue', 'Night', 'Gold', 'Rain', 'Fire'])}",
                artist_name=f"Artist {artist}",
                album_name=f"Album {artist}-{i // (artists * 10)}",
                uri=f"spotify:track:bench{i:07d}",
                duration_ms=rng.randint(120_000, 320_000),
            )
        )
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
    return music, episodes


# Plays by local hour (evenings heavy), as weights.
HOURS = [2, 1, 1, 1, 1, 2, 4, 7, 9, 8, 7, 7, 8, 7, 7, 8, 9, 10, 11, 12, 12, 10, 7, 4]


def _plays(
    rng: random.Random,
    count: int,
    music: list[TrackInfo],
    episodes: list[TrackInfo],
    end: datetime,
) -> Iterator[PlayRecord]:
    """About `count` plays over YEARS years up to `end`, in time order: exports' plays, and
    API plays (unknown duration) for about 30% of the last two years."""
    start = end - timedelta(days=365 * YEARS)
    span_days = (end - start).days
    weights = [1 / (rank + 10) ** 1.1 for rank in range(len(music))]
    cum = []
    total = 0.0
    for w in weights:
        total += w
        cum.append(total)
    api_from = end - timedelta(days=730)
    per_day = Counter(rng.choices(range(span_days), k=count))
    for day in sorted(per_day):
        n = per_day[day]
        hours = rng.choices(range(24), weights=HOURS, k=n)
        picks = rng.choices(range(len(music)), cum_weights=cum, k=n)
        plays = []
        for hour, pick in zip(hours, picks, strict=True):
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
            short = rng.random() < 0.15
            if played_at >= api_from and rng.random() < 0.3:
                record = PlayRecord(track=track, played_at=played_at, source=Source.API)
            else:
                ms = rng.randint(1_000, 29_000) if short else rng.randint(60_000, 300_000)
                record = PlayRecord(
                    track=track,
                    played_at=played_at.replace(microsecond=0),
                    source=Source.EXPORT_EXTENDED,
                    ms_played=ms,
                    reason_end="endplay" if short else "trackdone",
                    skipped=short,
                )
            plays.append(record)
        yield from sorted(plays, key=lambda r: r.played_at)


def _export_record(play: PlayRecord) -> dict[str, Any]:
    info = play.track
    if info.kind == Track.Kind.EPISODE:
        item = {"episode": info.name, "show": info.album_name, "episode_uri": info.uri}
    else:
        item = {
            "track": info.name,
            "artist": info.artist_name,
            "album": info.album_name,
            "uri": info.uri,
        }
    return extended_record(
        play.played_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ms_played=play.ms_played,
        **item,
        reason_end=play.reason_end,
        skipped=play.skipped,
    )


def _load(person: User, plays: Iterator[PlayRecord], folder: Path) -> None:
    """One person's plays through the paths users' plays take: the export's through an import
    of its ZIP, then the API's through the bulk insert that polls use."""
    api: list[PlayRecord] = []

    def exported() -> Iterator[dict[str, Any]]:
        for play in plays:
            if play.source == Source.API:
                api.append(play)
            else:
                yield _export_record(play)

    path = folder / f"{person.username}.zip"
    write_export(path, exported())
    job = services.create_local_job(user=person, path=path, queue=False)
    done = services.run_import(job_id=job.pk)
    assert done is not None and done.status == ImportJob.Status.SUCCEEDED, done and done.error
    path.unlink()
    for first in range(0, len(api), API_BATCH):
        insert_plays(user=person, records=api[first : first + API_BATCH])
    totals.refresh_best_days(person.pk)  # as the worker does after an import or a poll


API_BATCH = 5_000


def build(*, heavy: int, total: int, users: int, seed: int = 5) -> User:
    rng = random.Random(seed)
    end = datetime.combine(timezone.now().date(), datetime.min.time(), tzinfo=UTC)
    music, episodes = _catalogue(rng, artists=max(200, heavy // 200), tracks=max(2000, heavy // 16))
    people = [
        User.objects.create_user(username=f"bench{i}", password=None, timezone="Europe/Paris")
        for i in range(users)
    ]
    with tempfile.TemporaryDirectory(prefix="bench-tools-") as folder:
        for i, person in enumerate(people):
            count = heavy if i == 0 else (total - heavy) // (users - 1)
            _load(person, _plays(rng, count, music, episodes, end), Path(folder))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
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


def _kept(*, heavy: int, total: int) -> User | None:
    """The heavy user of the data an earlier run kept (--keepdb), if that data is all there:
    another benchmark run with --keepdb in between (`bench imports` empties the database) or
    an interrupted load leaves it to be built again."""
    user = User.objects.filter(username="bench0").first()
    if user is None:
        return None
    complete = Play.objects.for_user(user).count() >= heavy * 0.99
    if not complete or Play.objects.count() < total * 0.99:
        return None
    return user


def run(*, out: Any, options: dict[str, Any]) -> None:
    quick = options.get("quick", False)
    heavy, total, users = (100_000, 300_000, 10) if quick else (1_000_000, 3_000_000, 10)
    kept = _kept(heavy=heavy, total=total) if options.get("keepdb") else None
    if kept is not None:
        # --keepdb: the data an earlier run built is reused.
        user = kept
        out.write(
            f"Reusing the {Play.objects.count():,} plays kept from an earlier run (--keepdb)."
        )
    else:
        # A database kept by another benchmark (or an interrupted run) starts empty.
        empty_database()
        User.objects.filter(username__startswith="bench").delete()
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
    gc.collect()
    gc.freeze()  # as config/wsgi.py does once a web process has started
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
    gc.unfreeze()
    out.write(f"Targets missed: {', '.join(missed) if missed else 'none'}.")
