"""A worker killed with SIGKILL mid-import: another worker finishes the job with exactly the plays
and counts of a clean run. Real worker processes on PostgreSQL and Redis; nothing is mocked."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count, OuterRef, Subquery

from apps.accounts.models import User
from apps.history.models import Play
from apps.imports import services
from apps.imports.demo import write_demo_export
from apps.imports.models import ImportJob
from apps.imports.tasks import ingest_import

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent
RECORDS = 30_000
BATCH = 1_000


def start_worker(tmp_path: Path, name: str) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "IMPORT_BATCH_SIZE": str(BATCH),
        "SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [str(BIN / "celery"), "-A", "config", "worker", "--pool", "solo", "-n", f"{name}@%h"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_worker_killed_mid_import_leaves_exactly_the_clean_run(
    transactional_db, postgres, redis_url, tmp_path
):
    from config.celery import app

    app.control.purge()
    path = tmp_path / "export.zip"
    write_demo_export(path, records=RECORDS, seed=7)
    crashed_user = User.objects.create_user(username="crashed")
    clean_user = User.objects.create_user(username="clean")

    job = services.create_local_job(user=crashed_user, path=path, queue=False)
    first = start_worker(tmp_path, "first")
    second = None
    try:
        ingest_import.delay(job.pk)
        # Kill the worker once some batches are committed, well before the end.
        wait(
            lambda: ImportJob.objects.get(pk=job.pk).records_processed >= 3 * BATCH,
            120,
            "the first batches",
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        # The job and its plays read in one statement, so in one snapshot: a commit the killed
        # worker had already sent may still land while this test reads.
        plays = (
            Play.objects.filter(user=OuterRef("user"))
            .order_by()
            .values("user")
            .annotate(n=Count("*"))
            .values("n")
        )
        killed_at = ImportJob.objects.annotate(plays=Subquery(plays)).get(pk=job.pk)
        assert killed_at.status == "running"
        assert 0 < killed_at.records_processed < RECORDS
        assert killed_at.plays == killed_at.plays_added

        # Beat's recovery task notices the job has no live worker and queues it again.
        second = start_worker(tmp_path, "second")
        assert services.requeue_stale_jobs(stale_after=timedelta(0)) == [job.pk]
        wait(lambda: ImportJob.objects.get(pk=job.pk).is_finished, 180, "the resumed import")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    crashed = ImportJob.objects.get(pk=job.pk)
    clean = services.run_import(
        job_id=services.create_local_job(user=clean_user, path=path, queue=False).pk
    )
    assert clean is not None and clean.status == "succeeded"
    assert crashed.status == "succeeded", crashed.error
    assert crashed.attempts == 2
    summary = ("records_seen", "plays_added", "duplicates", "skipped", "earliest_play")
    assert {f: getattr(crashed, f) for f in summary} == {f: getattr(clean, f) for f in summary}
    assert crashed.latest_play == clean.latest_play
    assert Play.objects.for_user(crashed_user).count() == crashed.plays_added
    assert sorted(
        Play.objects.for_user(crashed_user).values_list("track_id", "played_at", "ms_played")
    ) == sorted(Play.objects.for_user(clean_user).values_list("track_id", "played_at", "ms_played"))
