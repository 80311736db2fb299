"""`bench imports` empties what an import writes between its runs."""

from datetime import UTC, datetime

import pytest

from apps.history.models import Play
from apps.imports import bench
from apps.imports.models import ImportJob, MergedPlay
from apps.music.models import Track


# Committed rows: PostgreSQL refuses TRUNCATE with the transaction's foreign key checks pending.
@pytest.mark.django_db(transaction=True)
def test_the_bench_empties_every_table_an_import_writes(user, make_track, make_play):
    track = make_track("Paranoid Android", "Radiohead", "OK Computer")
    play = make_play(user, track, datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    job = ImportJob.objects.create(user=user, original_name="my_spotify_data.zip")
    MergedPlay.objects.create(
        job=job, play_id=play.pk, track_id=track.pk, played_at=play.played_at, source="api"
    )
    bench.empty_database()
    assert [model.objects.count() for model in bench.IMPORTED] == [0] * len(bench.IMPORTED)
    assert not Play.objects.exists() and not Track.objects.exists()
    assert user.__class__.objects.filter(pk=user.pk).exists()  # the users stay
