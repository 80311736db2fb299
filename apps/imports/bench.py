"""`manage.py bench imports`: end-to-end import speed and memory, on generated exports.

It writes a realistic Extended Streaming History ZIP (`make_demo_export`, in a subprocess so this
process stays lean), then imports it three times into an empty catalogue, each time in a fresh
process, and prints each run's records/s, seconds and peak RSS, and the median. Then it
re-imports the same ZIP (everything is a duplicate: the matching path), reads it once more
without writing (the Python part of an import: what the database adds is the rest), and imports
an export twice the size, to show that memory stays flat. On SQLite it uses a database file in
WAL mode, as the embedded default does.

    make bench BENCH_ARGS=imports                      # PostgreSQL with DATABASE_URL, else SQLite
    .venv/bin/python manage.py bench imports --quick   # 50 000 records instead of 500 000
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connection

from apps.accounts.models import User
from apps.history.models import (
    ArtistMonthTotal,
    ArtistYearTotal,
    DayTotal,
    HourTotal,
    Play,
    TrackTotal,
)
from apps.imports import parser, services
from apps.imports.models import ImportJob, MergedPlay
from apps.music.models import Album, Artist, Track, TrackArtist


def _peak_rss_reset() -> None:
    """Reset the kernel's peak-RSS mark of this process (Linux), so each run is measured alone."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _rss_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS (current) of this process, in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _make_export(path: Path, records: int, seed: int) -> None:
    subprocess.run(
        [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "make_demo_export",
            str(path),
            "--records",
            str(records),
            "--seed",
            str(seed),
        ],
        check=True,
        capture_output=True,
    )


# Every table an import writes, each before the tables it refers to.
IMPORTED = (
    Play,
    TrackTotal,
    HourTotal,
    DayTotal,
    ArtistMonthTotal,
    ArtistYearTotal,
    MergedPlay,
    ImportJob,
    TrackArtist,
    Track,
    Album,
    Artist,
)


def empty_database() -> None:
    """Remove every play, total, import job and catalogue row (the benchmarks' users stay)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(m._meta.db_table for m in IMPORTED)}")
    else:
        for model in IMPORTED:
            model.objects.all().delete()


def _read_only(path: Path) -> dict[str, Any]:
    """Read and normalise every record of the export, in batches as an import does, and write
    nothing: the part of an import's time that is Python's, whatever the database."""
    _peak_rss_reset()
    started = time.perf_counter()
    records = 0
    with parser.open_archive(str(path)) as archive:
        for batch in services.read_batches(archive, parser.inspect_archive(archive), 0):
            records = batch.position
    seconds = time.perf_counter() - started
    return {
        "records": records,
        "seconds": seconds,
        "rate": records / seconds,
        "peak_mb": _rss_mb("VmHWM"),
    }


def _import(path: Path, username: str) -> dict[str, Any]:
    user, _ = User.objects.get_or_create(username=username)
    _peak_rss_reset()
    started = time.perf_counter()
    job = services.create_local_job(user=user, path=path, queue=False)
    done = services.run_import(job_id=job.pk)
    seconds = time.perf_counter() - started
    assert done is not None and done.status == ImportJob.Status.SUCCEEDED, done and done.error
    stored = Play.objects.for_user(user).count()
    assert stored >= done.plays_added, (stored, done.plays_added)
    return {
        "records": done.records_seen,
        "added": done.plays_added,
        "duplicates": done.duplicates,
        "seconds": seconds,
        "rate": done.records_seen / seconds,
        "peak_mb": _rss_mb("VmHWM"),
    }


# Each import runs in a fresh process, so its peak RSS is its own: this process has created
# the database and emptied it between runs, and keeps what that took.
CHILD = "import django; django.setup(); from apps.imports import bench; bench.child()"


def _import_in_child(path: Path, username: str | None) -> dict[str, Any]:
    """Import the export for username in a fresh process; with no username, only read it."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
        "BENCH_DATABASE_NAME": str(connection.settings_dict["NAME"]),
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), *([username] if username else [])],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"the import process failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def child() -> None:
    """The import process: `python -c CHILD PATH [USERNAME]`, on the parent's database."""
    connection.close()
    connection.settings_dict["NAME"] = os.environ["BENCH_DATABASE_NAME"]
    path, *username = sys.argv[1:]
    print(json.dumps(_import(Path(path), *username) if username else _read_only(Path(path))))


def _line(label: str, r: dict[str, Any]) -> str:
    line = (
        f"{label:<22} {r['records']:>9,} records {r['seconds']:>7.2f} s "
        f"{r['rate']:>9,.0f} records/s  peak RSS {r['peak_mb']:>5.0f} MB"
    )
    return (
        f"{line}  (added {r['added']:,}, duplicates {r['duplicates']:,})" if "added" in r else line
    )


def _use_sqlite_file(folder: Path) -> str:
    """Point the connection at a fresh SQLite file (WAL, as in the embedded default)."""
    old = connection.settings_dict["NAME"]
    connection.settings_dict["NAME"] = str(folder / "bench.sqlite3")
    # Closed after the switch: Django ignores closing an in-memory database (the test one).
    connection.close()
    call_command("migrate", verbosity=0, interactive=False)
    return str(old)


def run(*, out: Any, options: dict[str, Any]) -> None:
    records = 50_000 if options.get("quick") else 500_000
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as tmp:
        folder = Path(tmp)
        old_name = _use_sqlite_file(folder) if connection.vendor == "sqlite" else None
        try:
            export, double = folder / "export.zip", folder / "export-2x.zip"
            out.write(f"Writing a {records:,}-record export and a {2 * records:,}-record one...")
            _make_export(export, records, seed=1)
            _make_export(double, 2 * records, seed=2)
            out.write(
                f"Database: {connection.vendor}; batches of {settings.IMPORT_BATCH_SIZE:,}; "
                f"export {export.stat().st_size / 1e6:.1f} MB zipped. Each import runs in a "
                "fresh process; its peak RSS includes Django's own."
            )
            runs = []
            for i in range(3):
                empty_database()
                result = _import_in_child(export, f"bench{i}")
                runs.append(result)
                out.write(_line(f"run {i + 1} (empty db)", result))
            median = sorted(runs, key=lambda r: r["rate"])[1]
            out.write(
                f"median: {median['rate']:,.0f} records/s, {median['seconds']:.2f} s, "
                f"peak RSS {statistics.median(r['peak_mb'] for r in runs):.0f} MB"
            )
            out.write(_line("re-import (all known)", _import_in_child(export, "bench2")))
            out.write(_line("read only (no writes)", _import_in_child(export, None)))
            empty_database()
            out.write(_line("2x export (empty db)", _import_in_child(double, "bench-double")))
        finally:
            if old_name is not None:
                connection.close()
                connection.settings_dict["NAME"] = old_name
