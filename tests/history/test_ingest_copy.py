"""The PostgreSQL insert path's COPY: records no stored play is near are copied straight into
history_play; the others, and a batch that clashes with a play stored meanwhile, are matched."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.history import ingest
from apps.history.ingest import PlayRecord, insert_plays, resolve_records
from apps.history.models import Play, TrackTotal
from apps.music.models import Source, Track
from apps.music.services import TrackInfo

pytestmark = pytest.mark.usefixtures("postgres")

WHEN = datetime(2025, 3, 14, 18, 23, 41, tzinfo=UTC)


def song(name: str, uri: str) -> TrackInfo:
    return TrackInfo(
        name=name,
        artist_name="Example Artist",
        album_name="Example Album",
        uri=uri,
        duration_ms=200_000,
    )


ONE = song("One", "spotify:track:1111111111111111111111")
TWO = song("Two", "spotify:track:2222222222222222222222")


def export(info: TrackInfo, when: datetime, ms: int = 180_000) -> PlayRecord:
    return PlayRecord(info, when, Source.EXPORT_EXTENDED, ms, reason_end="trackdone")


def _staged(queries: CaptureQueriesContext) -> bool:
    return any("history_play_stage" in q["sql"] for q in queries.captured_queries)


def test_a_batch_near_no_stored_play_is_copied_with_its_tracks_copies(user):
    records = [
        export(ONE, WHEN),
        export(TWO, WHEN + timedelta(minutes=4)),
        export(ONE, WHEN),  # the same play again: one play
        export(ONE, WHEN + timedelta(minutes=8), ms=5_000),
    ]
    with CaptureQueriesContext(connection) as queries:
        result = insert_plays(user=user, records=records)
    assert not _staged(queries)
    assert (result.added, result.duplicates, result.merged) == (3, 1, 0)
    assert (result.earliest, result.latest) == (WHEN, WHEN + timedelta(minutes=8))
    one = Track.objects.get(uri=ONE.uri)
    plays = list(Play.objects.for_user(user).order_by("played_at"))
    assert [(p.track_id, p.played_at, p.ms_played) for p in plays] == [
        (one.pk, WHEN, 180_000),
        (Track.objects.get(uri=TWO.uri).pk, WHEN + timedelta(minutes=4), 180_000),
        (one.pk, WHEN + timedelta(minutes=8), 5_000),
    ]
    assert {(p.artist_id, p.album_id, p.kind, p.duration_ms) for p in plays} == {
        (one.primary_artist_id, one.album_id, "music", 200_000)
    }
    assert all(p.source == Source.EXPORT_EXTENDED and p.reason_end == "trackdone" for p in plays)
    # The totals' triggers ran on the COPY: two plays of One, one of them a listen.
    total = TrackTotal.objects.get(user=user, track=one)
    assert (total.plays, total.short_plays, total.first_play_at) == (2, 1, WHEN)


def test_a_play_repeated_in_time_order_is_copied_once_from_its_first_record(user):
    later = WHEN + timedelta(minutes=4)
    records = [
        export(ONE, WHEN),
        export(TWO, WHEN),  # another track at the same time: a play of its own
        export(ONE, WHEN, ms=1_000),  # the first again
        export(TWO, later),
        export(TWO, later),
        export(TWO, later),
        export(ONE, later + timedelta(minutes=4)),
    ]
    with CaptureQueriesContext(connection) as queries:
        result = insert_plays(user=user, records=records)
    assert not _staged(queries)
    assert (result.added, result.duplicates) == (4, 3)
    one, two = Track.objects.get(uri=ONE.uri).pk, Track.objects.get(uri=TWO.uri).pk
    plays = Play.objects.for_user(user).order_by("played_at", "track__name")
    assert [(p.track_id, p.played_at, p.ms_played) for p in plays] == [
        (one, WHEN, 180_000),
        (two, WHEN, 180_000),
        (two, later, 180_000),
        (one, later + timedelta(minutes=4), 180_000),
    ]


def test_a_batch_resolved_ahead_is_copied_with_its_tracks_copies_read_then(user, monkeypatch):
    """An import's reader resolves a batch and reads its tracks' copies a batch ahead; the
    writer's COPY takes them as given, and reads none itself."""
    records = [export(ONE, WHEN), export(TWO, WHEN + timedelta(minutes=4))]
    ids = resolve_records(records)
    copies = ingest.track_copies(ids)
    one = Track.objects.get(uri=ONE.uri)
    assert copies[one.pk] == (one.primary_artist_id, one.album_id, "music", 200_000)
    monkeypatch.setattr(ingest, "track_copies", lambda ids: pytest.fail("copies read again"))
    result = insert_plays(user=user, records=records, track_ids=ids, copies=copies)
    assert (result.added, result.duplicates) == (2, 0)
    plays = Play.objects.for_user(user).values_list(
        "track_id", "artist_id", "album_id", "kind", "duration_ms"
    )
    assert set(plays) == {(track_id, *copies[track_id]) for track_id in ids}


def test_repeats_are_the_records_after_the_first_of_a_track_and_time():
    t0, t1, t2 = WHEN, WHEN + timedelta(seconds=1), WHEN + timedelta(seconds=2)
    # In time order: only the runs of one time are compared.
    assert ingest._repeats([1, 2, 1, 2, 2, 2, 1], [t0, t0, t0, t1, t1, t1, t2]) == {2, 4, 5}
    # Out of order: every record is.
    assert ingest._repeats([1, 2, 1, 1], [t1, t0, t1, t2]) == {2}
    assert ingest._repeats([1, 2], [t0, t1]) == set()


def test_records_near_a_stored_play_are_matched_and_the_rest_copied(user):
    insert_plays(user=user, records=[PlayRecord(ONE, WHEN + timedelta(seconds=0.4), Source.API)])
    far = WHEN + timedelta(hours=2)
    with CaptureQueriesContext(connection) as queries:
        result = insert_plays(user=user, records=[export(ONE, WHEN), export(TWO, far)])
    assert _staged(queries)
    assert (result.added, result.duplicates, result.merged) == (1, 1, 1)
    assert (result.earliest, result.latest) == (far, far)
    plays = Play.objects.for_user(user).order_by("played_at")
    assert [(p.track.name, p.played_at, p.ms_played, p.source) for p in plays] == [
        ("One", WHEN + timedelta(seconds=0.4), 180_000, Source.API),
        ("Two", far, 180_000, Source.EXPORT_EXTENDED),
    ]


def test_a_batch_whose_span_holds_many_stored_plays_is_matched_whole(user):
    """A re-import: more stored plays in its span than half its records."""
    known = [export(ONE, WHEN + timedelta(minutes=4 * i)) for i in range(3)]
    insert_plays(user=user, records=known)
    new = export(TWO, WHEN + timedelta(minutes=30))
    with CaptureQueriesContext(connection) as queries:
        result = insert_plays(user=user, records=[*known, new])
    assert _staged(queries)
    assert (result.added, result.duplicates, result.merged) == (1, 3, 0)
    assert Play.objects.for_user(user).count() == 4


def test_a_play_stored_since_the_check_sends_the_batch_to_matching(
    transactional_db, user, monkeypatch
):
    """Another writer (a poll) commits one of the batch's plays between the look at the stored
    plays and the COPY: the COPY's clash is undone and the whole batch is matched instead."""
    insert_plays(user=user, records=[export(ONE, WHEN - timedelta(days=400))])
    one = Track.objects.get(uri=ONE.uri)
    copy_new = ingest._copy_new

    def poll_first(*args: Any) -> Any:
        def store() -> None:
            try:
                Play.objects.create(user=user, track=one, played_at=WHEN, source=Source.API)
            finally:
                connection.close()

        thread = threading.Thread(target=store)
        thread.start()
        thread.join()
        return copy_new(*args)

    monkeypatch.setattr(ingest, "_copy_new", poll_first)
    records = [export(ONE, WHEN), export(TWO, WHEN + timedelta(minutes=5))]
    with transaction.atomic():
        result = insert_plays(user=user, records=records)
        assert connection.in_atomic_block  # the batch's transaction went on
    assert (result.added, result.duplicates, result.merged) == (1, 1, 1)
    plays = Play.objects.for_user(user).filter(played_at__gte=WHEN).order_by("played_at")
    assert [(p.track.name, p.played_at, p.ms_played, p.source) for p in plays] == [
        ("One", WHEN, 180_000, Source.API),
        ("Two", WHEN + timedelta(minutes=5), 180_000, Source.EXPORT_EXTENDED),
    ]
    assert TrackTotal.objects.get(user=user, track=one).plays == 2


def test_a_copied_play_of_a_missing_track_fails_as_a_django_integrity_error(user):
    """The error the import's retry catches (apps.imports.services._write_batch) when a track
    was deleted under the batch, as the matching path's INSERT raises it."""
    with pytest.raises(IntegrityError, match="music_track"), transaction.atomic():
        ingest._insert_postgresql(
            user, Source.EXPORT_EXTENDED, [export(ONE, WHEN)], [987_654], None
        )
    assert Play.objects.count() == 0
