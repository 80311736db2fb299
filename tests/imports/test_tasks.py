"""Imports through a real Celery worker on PostgreSQL and Redis, the watched folder, and the
recovery of jobs left running by a dead worker."""

import os
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.history.ingest import PlayRecord, insert_plays
from apps.history.models import Play, TrackTotal
from apps.imports import services
from apps.imports.models import ImportJob
from apps.music.models import Source
from tests.imports.conftest import build_zip, example_song, extended

AUDIO = "Spotify Extended Streaming History/Streaming_History_Audio_2025_0.json"
RECORDS = [
    extended("2025-03-14T18:23:41Z"),
    extended("2025-03-14T18:30:00Z", track="Second", uri="spotify:track:2"),
    extended("2025-03-14T18:40:00Z", track="Third", uri="spotify:track:3", ms=1500),
    extended("2025-03-14T18:50:00Z", track=None, uri=None),  # no item: skipped
]


def wait_for_job(job_id: int, timeout: float = 60) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if job.is_finished:
            return job
        time.sleep(0.2)
    raise AssertionError(f"import {job_id} did not finish: {job.status} {job.error}")


def upload(client, content: bytes) -> int:
    response = client.post(
        reverse("imports:index"), {"file": SimpleUploadedFile("my_spotify_data.zip", content)}
    )
    assert response.status_code == 302
    return int(response["Location"].rsplit("=", 1)[1])


@pytest.mark.integration
@pytest.mark.slow  # starts a worker; needs PostgreSQL and Redis
def test_upload_task_counts_then_the_same_zip_adds_nothing(
    celery_worker, postgres, client, user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(user)
    content = build_zip({AUDIO: RECORDS})

    job = wait_for_job(upload(client, content))
    assert job.status == "succeeded", job.error
    assert (job.records_seen, job.plays_added, job.duplicates, job.skipped) == (
        4,
        3,
        0,
        {"no_item": 1},
    )
    # Then the worker counts each track's biggest day (see apps.history.totals).
    deadline = time.monotonic() + 20
    while TrackTotal.objects.filter(user=user, best_days_stale=True).exists():
        assert time.monotonic() < deadline, "the best days were not counted after the import"
        time.sleep(0.1)
    assert sorted(
        TrackTotal.objects.filter(user=user).values_list("best_day_plays", "best_day_listens")
    ) == [(1, 0), (1, 1), (1, 1)]

    again = wait_for_job(upload(client, content))
    assert (again.status, again.plays_added, again.duplicates) == ("succeeded", 0, 3)
    assert Play.objects.for_user(user).count() == 3


@pytest.mark.integration
@pytest.mark.slow  # starts a worker; needs PostgreSQL and Redis
def test_an_import_overlapping_polled_plays_adds_no_duplicates(
    celery_worker, postgres, client, user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    song = example_song()
    polled_at = datetime(2025, 3, 14, 18, 23, 42, 306000, tzinfo=UTC)
    insert_plays(user=user, records=[PlayRecord(song, polled_at, Source.API)])
    client.force_login(user)

    job = wait_for_job(upload(client, build_zip({AUDIO: RECORDS})))
    assert (job.status, job.plays_added, job.duplicates) == ("succeeded", 2, 1)
    play = Play.objects.for_user(user).get(track__uri=song.uri)
    assert (play.played_at, play.ms_played, play.source) == (polled_at, 214306, "api")
    assert Play.objects.for_user(user).count() == 3


@pytest.mark.integration
@pytest.mark.slow  # starts a worker; needs PostgreSQL and Redis
def test_the_watched_folder_imports_each_zip_once(
    celery_worker, postgres, user, settings, tmp_path
):
    settings.IMPORT_WATCH_DIR = str(tmp_path)
    (tmp_path / "alice").mkdir()
    (tmp_path / "nobody").mkdir()
    (tmp_path / "alice" / "export.zip").write_bytes(build_zip({AUDIO: RECORDS}))
    (tmp_path / "nobody" / "export.zip").write_bytes(build_zip({AUDIO: RECORDS}))
    (tmp_path / "alice" / "notes.txt").write_text("not a zip")
    settled = time.time() - services.WATCH_SETTLE_SECONDS
    for path in tmp_path.glob("*/export.zip"):
        os.utime(path, (settled, settled))

    from apps.imports.tasks import scan_import_watch_dir

    first = scan_import_watch_dir.delay()
    deadline = time.monotonic() + 30
    while not ImportJob.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    job = wait_for_job(ImportJob.objects.get().pk)
    assert (job.user, job.original_name, job.plays_added) == (user, "export.zip", 3)
    assert first is not None

    assert services.scan_watch_dir() == []  # already imported
    assert ImportJob.objects.count() == 1


def test_a_watched_file_still_changing_waits_for_the_next_scan(user, settings, tmp_path):
    settings.IMPORT_WATCH_DIR = str(tmp_path)
    path = tmp_path / "alice" / "export.zip"
    path.parent.mkdir()
    path.write_bytes(build_zip({AUDIO: RECORDS})[:100])  # a copy in progress
    assert services.scan_watch_dir() == []
    path.write_bytes(build_zip({AUDIO: RECORDS}))
    settled = time.time() - services.WATCH_SETTLE_SECONDS
    os.utime(path, (settled, settled))
    with transaction.atomic():
        (job,) = services.scan_watch_dir()
    assert (job.user, job.original_name, job.size) == (user, "export.zip", path.stat().st_size)


def test_a_job_left_running_by_a_dead_worker_is_queued_again(
    user, tmp_path, django_capture_on_commit_callbacks
):
    path = tmp_path / "export.zip"
    path.write_bytes(build_zip({AUDIO: RECORDS}))
    job = services.create_local_job(user=user, path=path, queue=False)
    claimed = services.claim_job(job_id=job.pk)
    assert claimed is not None
    ImportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))

    with django_capture_on_commit_callbacks() as callbacks:
        assert services.requeue_stale_jobs() == [job.pk]
    job.refresh_from_db()
    assert (job.status, len(callbacks)) == ("pending", 1)

    done = services.run_import(job_id=job.pk)
    assert done is not None
    assert (done.status, done.attempts, done.plays_added) == ("succeeded", 2, 3)


def test_a_job_interrupted_three_times_fails_with_a_clear_error(user, tmp_path):
    path = tmp_path / "export.zip"
    path.write_bytes(build_zip({AUDIO: RECORDS}))
    job = services.create_local_job(user=user, path=path, queue=False)
    ImportJob.objects.filter(pk=job.pk).update(
        status="running", attempts=3, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    assert services.requeue_stale_jobs() == []
    job.refresh_from_db()
    assert (job.status, job.error) == (
        "failed",
        "The import was interrupted 3 times without finishing; it was stopped.",
    )


def test_one_import_per_user_runs_at_a_time(user, tmp_path):
    path = tmp_path / "export.zip"
    path.write_bytes(build_zip({AUDIO: RECORDS}))
    first = services.create_local_job(user=user, path=path, queue=False)
    second = services.create_local_job(user=user, path=path, queue=False)
    assert services.claim_job(job_id=first.pk) is not None
    with pytest.raises(services.UserBusy):
        services.claim_job(job_id=second.pk)
    second.refresh_from_db()
    assert second.status == "pending"


def test_an_interrupted_import_keeps_other_imports_of_its_user_waiting(
    user, make_track, make_play, tmp_path, django_capture_on_commit_callbacks
):
    """A failed import removes the export plays added since its first claim, so while an
    interrupted one waits to resume, no other import of the same user may add any."""
    path = tmp_path / "export.zip"
    path.write_bytes(build_zip({AUDIO: RECORDS}))
    first = services.claim_job(
        job_id=services.create_local_job(user=user, path=path, queue=False).pk
    )
    assert first is not None
    second = services.create_local_job(user=user, path=path, queue=False)
    # The first one's worker dies: it goes back to pending, to resume.
    ImportJob.objects.filter(pk=first.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks():
        assert services.requeue_stale_jobs() == [first.pk]
    with pytest.raises(services.UserBusy, match="running or waiting to resume"):
        services.claim_job(job_id=second.pk)
    # Should the first one's message be lost too, it alone is queued again.
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.requeue_stale_jobs(stale_after=timedelta(0)) == [first.pk]
    assert len(callbacks) == 1

    first = services.claim_job(job_id=first.pk)
    assert first is not None and first.attempts == 2
    make_play(user, make_track("Added by the first"), datetime(2024, 1, 1, tzinfo=UTC))
    services.fail_import(job=first, reason="The file is not a ZIP archive.")
    assert Play.objects.for_user(user).count() == 0
    done = services.run_import(job_id=second.pk)
    assert done is not None
    assert (done.status, done.plays_added, Play.objects.for_user(user).count()) == (
        "succeeded",
        3,
        3,
    )


def test_a_failing_import_waits_for_a_running_poll_of_its_user(
    user, make_track, make_play, tmp_path, monkeypatch, caplog
):
    """The clean-up holds the user's collection lock, so no poll folds a play into the plays
    it removes; it waits for a running poll, and past FAIL_LOCK_WAIT_SECONDS goes on anyway."""
    import threading

    from django.core.cache import cache

    from apps.history.collection import user_lock

    path = tmp_path / "export.zip"
    path.write_bytes(build_zip({AUDIO: RECORDS}))
    for attempt in range(2):
        job = services.claim_job(
            job_id=services.create_local_job(user=user, path=path, queue=False).pk
        )
        assert job is not None
        make_play(user, make_track(f"Added {attempt}"), datetime(2024, 1, 1, tzinfo=UTC))
        key = f"collect:lock:{user.pk}"
        assert cache.add(key, "a poll", timeout=60)  # a poll of the user is running
        if attempt == 0:  # it ends after 0.3 s
            threading.Timer(0.3, cache.delete, [key]).start()
        else:  # it never ends in time
            monkeypatch.setattr(services, "FAIL_LOCK_WAIT_SECONDS", 0.3)
        started = time.monotonic()
        services.fail_import(job=job, reason="The file is not a ZIP archive.")
        assert time.monotonic() - started >= 0.3
        assert Play.objects.for_user(user).count() == 0
        job.refresh_from_db()
        assert (job.status, job.error) == ("failed", "The file is not a ZIP archive.")
        cache.delete(key)
        with user_lock(user.pk) as free:  # the clean-up let go of the lock
            assert free
        waited_out = "held on; cleaning up without waiting more" in caplog.text
        assert waited_out == (attempt == 1)


def test_a_failed_import_gives_back_a_play_a_poll_folded_into_one_of_its_plays(
    user, connect_fake, fake_spotify, make_track, make_play, tmp_path, settings
):
    """A poll during an import folds the plays it saw into ones the import had just added. The
    import then fails and removes its plays. A fold that gave its play the API's millisecond
    time leaves it in place as the API play it was; one that left no mark (an API time with no
    milliseconds) is fetched again by the next poll, from before the import's plays: the
    failure loses nothing."""
    from apps.accounts.fake_spotify import make_track as spotify_track
    from apps.history import collection
    from apps.history.models import SyncCheckpoint

    connect_fake(user)
    seen_at = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    fake_spotify.add_play("alice", played_at=seen_at, name="Seen before")
    collection.poll_user(user=user)

    path = tmp_path / "export.zip"
    path.write_bytes(build_zip({AUDIO: RECORDS}))
    claimed = services.claim_job(
        job_id=services.create_local_job(user=user, path=path, queue=False).pk
    )
    assert claimed is not None
    # Plays the import added (whole seconds, with the export's details), then the same plays
    # polled. Teardrop's fold takes the API's millisecond time. Angel's API time has no
    # milliseconds, so its fold leaves no mark.
    at = seen_at + timedelta(minutes=30)
    angel_at = at + timedelta(minutes=5)
    details = {"ms_played": 200_000, "platform": "android", "reason_end": "trackdone"}
    for name, uri, when, polled_at in (
        ("Teardrop", "td01", at, at + timedelta(milliseconds=306)),
        ("Angel", "an01", angel_at, angel_at),
    ):
        track = make_track(name, "Massive Attack", "Mezzanine", uri=f"spotify:track:{uri}")
        make_play(user, track, when, source=Source.EXPORT_EXTENDED, **details)
        payload = spotify_track(name, "Massive Attack", "Mezzanine", track_id=uri)
        fake_spotify.add_play("alice", played_at=polled_at, track=payload)
    run = collection.poll_user(user=user)
    assert (run.counts["added"], run.counts["duplicates"]) == (0, 2)
    assert Play.objects.for_user(user).count() == 3

    services.fail_import(job=claimed, reason="The file is not a ZIP archive.")
    plays = Play.objects.for_user(user).order_by("played_at")
    polled = at + timedelta(milliseconds=306)
    assert [(p.track.name, p.played_at, p.source, p.ms_played, p.platform) for p in plays] == [
        ("Seen before", seen_at, Source.API, None, ""),
        ("Teardrop", polled, Source.API, None, ""),  # the export's details went with it
    ]
    assert Play.objects.get(track__name="Teardrop").reason_end == ""
    # The cursor goes back to before the earliest play removed (Angel's), less the tolerance.
    rewound = SyncCheckpoint.objects.get(user=user).newest_played_at
    tolerance = timedelta(seconds=settings.DEDUP_TOLERANCE_SECONDS)
    assert rewound == angel_at - tolerance

    run = collection.poll_user(user=user)  # from the cursor on, Spotify lists Angel alone
    assert (run.counts["added"], run.counts["duplicates"]) == (1, 0)
    plays = Play.objects.for_user(user).order_by("played_at")
    assert [(p.track.name, p.played_at, p.source) for p in plays] == [
        ("Seen before", seen_at, Source.API),
        ("Teardrop", polled, Source.API),
        ("Angel", angel_at, Source.API),
    ]
    assert SyncCheckpoint.objects.get(user=user).newest_played_at == angel_at
