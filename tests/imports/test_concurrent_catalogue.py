"""Another user's import changing the catalogue under a running import (PostgreSQL)."""

import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import OperationalError, connection
from psycopg.errors import DeadlockDetected

from apps.accounts.models import User
from apps.history import ingest
from apps.history.models import Play
from apps.imports import services
from apps.imports.models import ImportJob
from apps.music import services as music_services
from apps.music.models import Source, Track
from apps.music.services import TrackInfo
from tests.imports.conftest import account, example_song, extended

REAL = "spotify:track:9"


def test_a_local_track_merged_away_mid_batch_loses_no_play(
    transactional_db, postgres, export_zip, monkeypatch
):
    alice = User.objects.create_user(username="alice")
    bob = User.objects.create_user(username="bob")
    song = TrackInfo(name="Song", artist_name="Artist")
    ingest.insert_plays(
        user=alice,
        records=[
            ingest.PlayRecord(song, datetime(2025, 3, 14, 10, tzinfo=UTC), Source.EXPORT_ACCOUNT)
        ],
    )
    local = Track.objects.get()

    # Alice's next Account Data batch resolves the song to its local track. Before it inserts,
    # Bob's import brings the real track: it takes the local track's plays and deletes it.
    def bob_brings_the_real_track() -> None:
        real = TrackInfo(name="Song", artist_name="Artist", uri=REAL)
        at = datetime(2025, 3, 14, 12, tzinfo=UTC)
        try:
            ingest.insert_plays(
                user=bob, records=[ingest.PlayRecord(real, at, Source.EXPORT_EXTENDED, 200_000)]
            )
        finally:
            connection.close()

    insert = ingest._insert_postgresql
    calls = []

    def racing_insert(user, *args, **kwargs):
        if user == alice:
            calls.append(args)
            if len(calls) == 1:
                thread = threading.Thread(target=bob_brings_the_real_track)
                thread.start()
                thread.join()
        return insert(user, *args, **kwargs)

    monkeypatch.setattr(ingest, "_insert_postgresql", racing_insert)
    path = export_zip(
        {"StreamingHistory_music_0.json": [account("2025-03-14 11:00", "Song", "Artist")]}
    )
    job = services.run_import(
        job_id=services.create_local_job(user=alice, path=path, queue=False).pk
    )

    assert job is not None and job.status == ImportJob.Status.SUCCEEDED, job and job.error
    assert (job.plays_added, job.duplicates) == (1, 0)
    assert len(calls) == 2  # the batch was written a second time
    assert not Track.objects.filter(pk=local.pk).exists()
    assert sorted(Play.objects.values_list("user__username", "played_at", "track__uri")) == [
        ("alice", datetime(2025, 3, 14, 10, tzinfo=UTC), REAL),
        ("alice", datetime(2025, 3, 14, 11, tzinfo=UTC), REAL),
        ("bob", datetime(2025, 3, 14, 12, tzinfo=UTC), REAL),
    ]


# An import's own batches, resolved by its reader thread a batch ahead of the writer: the first
# file's plays of the song, without its URI, give it a local track, and the next batch brings the
# real track, which takes the local one's plays and deletes it, while the writer stores the first.
SONG_FILES = {
    "Streaming_History_Audio_2024.json": [
        extended("2025-03-14T10:00:00Z", uri=None),
        extended("2025-03-14T11:00:00Z", uri=None),
    ],
    "Streaming_History_Audio_2025.json": [
        extended("2025-03-14T11:00:00Z"),  # the same play, with the song's URI
        extended("2025-03-14T12:00:00Z"),
    ],
}
SONG_PLAYS = [datetime(2025, 3, 14, hour, tzinfo=UTC) for hour in (10, 11, 12)]


def _import_songs(
    user, export_zip, monkeypatch, wait_for
) -> tuple[ImportJob, dict[str, list[int]]]:
    """Import SONG_FILES; the writer calls `wait_for(local track id, written)` before and after
    it first writes the first batch, the local track's plays uncommitted in between. Returns the
    job, and the number of the batch each write and each resolution was of."""
    insert = ingest._insert_postgresql
    resolve = services.resolve_records
    calls = []
    batches: dict[str, list[int]] = {"written": [], "resolved": []}

    def number(records) -> int:
        return 1 if records[0].track.uri is None else 2

    def resolve_counted(records, known_tracks):
        batches["resolved"].append(number(records))
        return resolve(records, known_tracks)

    def insert_waiting(user, source, records, track_ids, copies):
        calls.append(records[0].played_at)
        batches["written"].append(number(records))
        if len(calls) != 1:
            return insert(user, source, records, track_ids, copies)
        wait_for(track_ids[0], False)
        result = insert(user, source, records, track_ids, copies)
        wait_for(track_ids[0], True)
        return result

    monkeypatch.setattr(ingest, "_insert_postgresql", insert_waiting)
    monkeypatch.setattr(services, "resolve_records", resolve_counted)
    job = services.run_import(
        job_id=services.create_local_job(user=user, path=export_zip(SONG_FILES), queue=False).pk
    )
    assert job is not None and job.status == ImportJob.Status.SUCCEEDED, job and job.error
    return job, batches


def _until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _assert_song_plays(user, job: ImportJob | None) -> None:
    """What a run without the reader ahead stores: every play on the real track."""
    assert job is not None
    assert (job.records_seen, job.plays_added, job.duplicates) == (4, 3, 1)
    assert list(Track.objects.values_list("uri", flat=True)) == [example_song().uri]
    assert (
        list(Play.objects.for_user(user).order_by("played_at").values_list("played_at", flat=True))
        == SONG_PLAYS
    )
    assert Play.objects.filter(track__uri=example_song().uri).count() == 3


@pytest.fixture
def two_a_batch(settings):
    settings.IMPORT_BATCH_SIZE = 2


def test_a_batch_whose_local_track_the_reader_merged_away_is_written_again(
    transactional_db, postgres, two_a_batch, export_zip, monkeypatch
):
    alice = User.objects.create_user(username="alice")

    def before_writing(local_id: int, written: bool) -> None:
        # The reader resolves the Extended batch, merging the local track away, first.
        if not written:
            assert _until(lambda: not Track.objects.filter(pk=local_id).exists())

    job, batches = _import_songs(alice, export_zip, monkeypatch, before_writing)

    _assert_song_plays(alice, job)
    assert batches == {"resolved": [1, 2], "written": [1, 1, 2]}  # the first written twice


def test_a_merge_waits_for_the_writers_batch_and_moves_its_plays_too(
    transactional_db, postgres, two_a_batch, export_zip, monkeypatch
):
    alice = User.objects.create_user(username="alice")
    batch_written = threading.Event()
    merge = music_services.merge_local_tracks

    def merge_once_written(real_tracks):
        assert batch_written.wait(10)
        return merge(real_tracks)

    monkeypatch.setattr(music_services, "merge_local_tracks", merge_once_written)

    def after_writing(local_id: int, written: bool) -> None:
        # The reader's merge, once the batch that refers to the local track is written, locks
        # the track first, so it waits for that batch; once that commits, its plays move with
        # the others.
        if written:
            batch_written.set()
            with connection.cursor() as cursor:

                def waiting() -> bool:
                    cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted)")
                    return cursor.fetchone()[0]

                assert _until(waiting)

    job, batches = _import_songs(alice, export_zip, monkeypatch, after_writing)

    _assert_song_plays(alice, job)
    assert batches == {"resolved": [1, 2], "written": [1, 2]}  # nothing done twice


def test_a_write_cancelled_by_a_deadlock_is_run_again(db):
    catalogue = services._Catalogue(1, ahead=True)
    attempts: list[int] = []

    def deadlocked_once(attempt: int) -> str:
        attempts.append(attempt)
        if attempt == 1:
            raise OperationalError("deadlock detected") from DeadlockDetected("deadlock detected")
        return "written"

    assert catalogue.twice(deadlocked_once) == "written"
    assert attempts == [1, 2]

    def connection_lost(attempt: int) -> str:
        attempts.append(attempt)
        raise OperationalError("the connection was lost")

    attempts.clear()
    with pytest.raises(OperationalError, match="the connection was lost"):
        catalogue.twice(connection_lost)
    assert attempts == [1]  # not what another transaction did: not run again


def test_the_reader_resolves_on_its_own_connection_and_closes_it(
    transactional_db, postgres, two_a_batch, export_zip, monkeypatch
):
    alice = User.objects.create_user(username="alice")
    resolved_in: list[str] = []
    track_ids = services._Catalogue.track_ids

    def recorded(self, records):
        resolved_in.append(threading.current_thread().name)
        return track_ids(self, records)

    monkeypatch.setattr(services._Catalogue, "track_ids", recorded)

    def backends() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            return cursor.fetchone()[0]

    before = backends()
    job = services.run_import(
        job_id=services.create_local_job(user=alice, path=export_zip(SONG_FILES), queue=False).pk
    )

    assert resolved_in == ["import-reader", "import-reader"]
    _assert_song_plays(alice, job)
    assert _until(lambda: backends() == before)


def test_the_writer_alone_stores_the_same(db, two_a_batch, export_zip):
    """Inside a transaction (this test's) the writer resolves each batch itself."""
    alice = User.objects.create_user(username="alice")
    job = services.run_import(
        job_id=services.create_local_job(user=alice, path=export_zip(SONG_FILES), queue=False).pk
    )
    _assert_song_plays(alice, job)
