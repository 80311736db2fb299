"""`manage.py bench admin`: every admin page, and the per-user analytics page, at 1 000 000 plays.

The data is made in the database itself (set-based INSERT … SELECT over generate_series on
PostgreSQL, bulk inserts elsewhere): one heavy user with 1 000 000 plays over ten years, nine
lighter users, a catalogue of 20 000 tracks, job runs, import jobs and log lines. Then each page
is fetched in-process with Django's test client as a superuser, five times, and the median and
the slowest are printed; pages over a second are flagged.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from django.contrib import admin
from django.db import connection
from django.http import HttpRequest
from django.test import Client, RequestFactory
from django.test.utils import override_settings
from django.urls import reverse

from apps.accounts.models import User
from apps.history import totals

RUNS = 5
TARGET_MS = 1000.0


def _sizes(quick: bool) -> dict[str, int]:
    scale = 10 if quick else 1
    return {
        "plays": 1_000_000 // scale,
        "light_plays": 20_000 // scale,
        "light_users": 9,
        "artists": 2_000,
        "albums": 5_000,
        "tracks": 20_000,
        "job_runs": 20_000 // scale,
        "log_events": 100_000 // scale,
        "import_jobs": 200,
    }


def load(sizes: dict[str, int], out: Any) -> User:
    started = time.perf_counter()
    heavy = User.objects.create_user(username="heavy", timezone="Europe/Paris")
    users = [heavy] + [
        User.objects.create_user(username=f"light{i}") for i in range(sizes["light_users"])
    ]
    if connection.vendor == "postgresql":
        _load_postgresql(sizes, [u.pk for u in users])
    else:
        _load_portable(sizes, users)
    _load_operations(sizes, heavy)
    out.write(
        f"loaded {sizes['plays']:,} plays for one user (+{sizes['light_plays']:,} for each of "
        f"{sizes['light_users']} others) in {time.perf_counter() - started:.1f} s"
    )
    return heavy


def _load_postgresql(sizes: dict[str, int], user_ids: list[int]) -> None:
    heavy, light = user_ids[0], user_ids[1:]
    statements = [
        (
            "INSERT INTO music_artist (name, name_key, created_at) "
            "SELECT 'Artist ' || g, 'artist ' || g, now() FROM generate_series(1, %(artists)s) g"
        ),
        (
            "INSERT INTO music_album (name, name_key, artist_id, created_at) "
            "SELECT 'Album ' || g, 'album ' || g, a.id, now() "
            "FROM generate_series(1, %(albums)s) g "
            "JOIN music_artist a ON a.name_key = 'artist ' || (1 + g %% %(artists)s)"
        ),
        # 1% podcast episodes, the rest music; a Zipf-like draw below makes a few tracks hot.
        (
            "INSERT INTO music_track (uri, kind, name, name_key, album_id, primary_artist_id, "
            "duration_ms, first_source, created_at) "
            "SELECT 'spotify:track:bench' || g, CASE WHEN g %% 100 = 0 THEN 'episode' ELSE "
            "'music' END, 'Track ' || g, 'track ' || g, al.id, al.artist_id, "
            "120000 + (g * 7919) %% 240000, 'export_extended', now() "
            "FROM generate_series(1, %(tracks)s) g "
            "JOIN music_album al ON al.name_key = 'album ' || (1 + g %% %(albums)s)"
        ),
        "CREATE TEMP TABLE bench_tracks AS SELECT row_number() OVER (ORDER BY id) AS n, id "
        "FROM music_track",
        "CREATE UNIQUE INDEX ON bench_tracks (n)",
    ]
    # The track of each play is drawn in a materialised CTE: a random() in the join condition
    # would be drawn again for every pair of rows.
    plays = (
        "WITH draws AS MATERIALIZED (SELECT g, 1 + floor(power(random(), 3) * %(tracks)s)::int "
        "AS n FROM generate_series(1, %(count)s) g) "
        "INSERT INTO history_play (user_id, track_id, played_at, ms_played, source, "
        "reason_start, reason_end, skipped, shuffle, offline, platform, conn_country, "
        "user_agent, export_username, created_at, artist_id, album_id, kind, duration_ms) "
        "SELECT %(user)s, t.id, "
        "timestamptz '2026-11-01 00:00+00' - make_interval(secs => d.g * %(spacing)s), "
        "CASE WHEN g %% 10 = 0 THEN 5000 WHEN g %% 17 = 0 THEN NULL ELSE 30000 + g %% 200000 "
        "END, CASE WHEN g %% 17 = 0 THEN 'api' ELSE 'export_extended' END, 'clickrow', "
        "CASE WHEN g %% 10 = 0 THEN 'fwdbtn' ELSE 'trackdone' END, g %% 10 = 0, false, false, "
        "'android', 'FR', '', '', now() - make_interval(secs => g), "
        "k.primary_artist_id, k.album_id, k.kind, k.duration_ms "
        "FROM draws d JOIN bench_tracks t ON t.n = d.n JOIN music_track k ON k.id = t.id"
    )
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql, sizes)
        # Ten years of plays for the heavy user, about one every 5 minutes.
        cursor.execute(
            plays,
            {**sizes, "user": heavy, "count": sizes["plays"], "spacing": 315},
        )
        for user_id in light:
            cursor.execute(
                plays,
                {**sizes, "user": user_id, "count": sizes["light_plays"], "spacing": 3600},
            )
        cursor.execute("DROP TABLE bench_tracks")
    for user_id in [heavy, *light]:
        totals.refresh_best_days(user_id)  # as the worker does after an import
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _load_portable(sizes: dict[str, int], users: list[User]) -> None:
    """The same shape through bulk inserts, for SQLite."""
    import random
    from datetime import UTC, datetime, timedelta

    from apps.history.models import Play
    from apps.music.models import Album, Artist, Source, Track

    rng = random.Random(7)
    artists = Artist.objects.bulk_create(
        [Artist(name=f"Artist {i}", name_key=f"artist {i}") for i in range(sizes["artists"])]
    )
    albums = Album.objects.bulk_create(
        [
            Album(name=f"Album {i}", name_key=f"album {i}", artist=artists[i % len(artists)])
            for i in range(sizes["albums"])
        ]
    )
    tracks = Track.objects.bulk_create(
        [
            Track(
                uri=f"spotify:track:bench{i}",
                kind=Track.Kind.EPISODE if i % 100 == 0 else Track.Kind.MUSIC,
                name=f"Track {i}",
                name_key=f"track {i}",
                album=albums[i % len(albums)],
                primary_artist=albums[i % len(albums)].artist,
                duration_ms=120_000 + (i * 7919) % 240_000,
                first_source=Source.EXPORT_EXTENDED,
            )
            for i in range(sizes["tracks"])
        ],
        batch_size=5000,
    )
    end = datetime(2026, 11, 1, tzinfo=UTC)
    for user, count, spacing in [(users[0], sizes["plays"], 315)] + [
        (u, sizes["light_plays"], 3600) for u in users[1:]
    ]:
        batch = []
        for g in range(1, count + 1):
            short = g % 10 == 0
            batch.append(
                Play(
                    user=user,
                    track=tracks[int(rng.random() ** 3 * len(tracks))],
                    played_at=end - timedelta(seconds=g * spacing),
                    ms_played=5000 if short else (None if g % 17 == 0 else 30_000 + g % 200_000),
                    source=Source.API if g % 17 == 0 else Source.EXPORT_EXTENDED,
                    reason_end="fwdbtn" if short else "trackdone",
                    skipped=short,
                    platform="android",
                )
            )
            if len(batch) == 10_000:
                Play.objects.bulk_create(batch)
                batch = []
        Play.objects.bulk_create(batch)


def _load_operations(sizes: dict[str, int], user: User) -> None:
    """Job runs, log lines and import jobs, through bulk inserts (their columns change more often
    than the plays' and they are few enough)."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.history.models import JobRun, LogEvent
    from apps.imports.models import ImportJob

    now = timezone.now()
    JobRun.objects.bulk_create(
        [
            JobRun(
                user=user,
                type=JobRun.Type.INITIAL_SYNC if i % 50 == 0 else JobRun.Type.POLL,
                status=JobRun.Status.FAILED if i % 97 == 0 else JobRun.Status.SUCCEEDED,
                started_at=now - timedelta(minutes=10 * i),
                finished_at=now - timedelta(minutes=10 * i, seconds=-2),
                counts={"fetched": 50, "added": 3},
                error="Spotify answered 503" if i % 97 == 0 else "",
            )
            for i in range(1, sizes["job_runs"] + 1)
        ],
        batch_size=5000,
    )
    LogEvent.objects.bulk_create(
        [
            LogEvent(
                created_at=now - timedelta(minutes=i),
                level=40 if i % 5 == 0 else 30,
                logger="apps.history.collection" if i % 3 == 0 else "apps.accounts.spotify",
                message=f"Bench log line {i}",
                user=user,
            )
            for i in range(1, sizes["log_events"] + 1)
        ],
        batch_size=5000,
    )
    ImportJob.objects.bulk_create(
        [
            ImportJob(
                user=user,
                file=f"imports/bench/{i}.zip",
                original_name="my_spotify_data.zip",
                status=ImportJob.Status.SUCCEEDED,
                formats=["extended_audio"],
                records_total=15_000,
                records_processed=15_000,
                records_seen=15_000,
                plays_added=14_000,
                duplicates=900,
                skipped={"bad_timestamp": 100},
                created_at=now - timedelta(days=i),
            )
            for i in range(1, sizes["import_jobs"] + 1)
        ]
    )


def pages(heavy: User, request: HttpRequest) -> list[tuple[str, str]]:
    """(label, URL) of every admin page: the index, each model's changelist, search, add and
    change pages, the log viewer's filters and purge page, and the per-user analytics page."""
    from apps.history.models import Play

    result = [("admin index (overview)", reverse("admin:index"))]
    for model, model_admin in sorted(admin.site._registry.items(), key=lambda m: m[0]._meta.label):
        opts = model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        changelist = reverse(f"admin:{name}_changelist")
        result.append((f"{opts.label} list", changelist))
        if model_admin.search_fields:
            result.append((f"{opts.label} search", f"{changelist}?q=Track+12"))
        if model_admin.has_add_permission(request):
            result.append((f"{opts.label} add", reverse(f"admin:{name}_add")))
        obj = model._default_manager.order_by("pk").first()
        if obj is not None:
            result.append((f"{opts.label} change", reverse(f"admin:{name}_change", args=[obj.pk])))
    play = Play.objects.for_user(heavy).order_by("pk").first()
    assert play is not None
    logs = reverse("admin:history_logevent_changelist")
    result += [
        ("plays of one user", f"{reverse('admin:history_play_changelist')}?user={heavy.pk}"),
        ("plays filtered by source", f"{reverse('admin:history_play_changelist')}?source=api"),
        ("plays page 50", f"{reverse('admin:history_play_changelist')}?p=50"),
        ("logs: errors", f"{logs}?level=40"),
        ("logs: one logger", f"{logs}?logger=apps.history.collection"),
        ("logs: one user", f"{logs}?user__id__exact={heavy.pk}"),
        ("logs: search", f"{logs}?q=line+99"),
        ("logs: purge page", reverse("admin:history_logevent_purge")),
    ]
    analytics = reverse("admin:accounts_user_analytics", args=[heavy.pk])
    result += [
        ("user analytics, 30 days", f"{analytics}?days=30"),
        ("user analytics, 90 days", f"{analytics}?days=90"),
        ("user analytics, 365 days", f"{analytics}?days=365"),
        ("user analytics, all time", f"{analytics}?days=0"),
    ]
    return result


def time_pages(*, heavy: User, out: Any, only: str = "") -> list[str]:
    """Fetch every page RUNS times; print the median and the slowest; the slow pages' labels."""
    superuser = User.objects.filter(username="bench-admin").first() or (
        User.objects.create_superuser(username="bench-admin", password=None)
    )
    request = RequestFactory().get("/admin/")
    request.user = superuser
    client = Client()
    client.force_login(superuser)
    slow = []
    out.write(f"{'page':<44} {'median ms':>10} {'max ms':>10}")
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        for label, url in pages(heavy, request):
            if only not in label:
                continue
            times = []
            for _ in range(RUNS):
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{label}: {url} answered {response.status_code}")
            median = statistics.median(times)
            flag = "  SLOW" if median > TARGET_MS else ""
            out.write(f"{label:<44} {median:>10.0f} {max(times):>10.0f}{flag}")
            if median > TARGET_MS:
                slow.append(label)
    return slow


def run(*, out: Any, options: dict[str, Any]) -> None:
    sizes = _sizes(options.get("quick", False))
    heavy = load(sizes, out)
    slow = time_pages(heavy=heavy, out=out)
    out.write(
        f"{len(slow)} page(s) over {TARGET_MS:.0f} ms" + (f": {', '.join(slow)}" if slow else "")
    )
