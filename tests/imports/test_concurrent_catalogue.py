"""Another user's import changing the catalogue under a running import (PostgreSQL)."""

import threading
from datetime import UTC, datetime

from django.db import connection

from apps.accounts.models import User
from apps.history import ingest
from apps.history.models import Play
from apps.imports import services
from apps.imports.models import ImportJob
from apps.music.models import Source, Track
from apps.music.services import TrackInfo
from tests.imports.conftest import account

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
