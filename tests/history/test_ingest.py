"""The one bulk-insert path: dedup within and across sources, and the merge of better data."""

from dataclasses import fields
from datetime import UTC, datetime

from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.history import ingest
from apps.history.ingest import PlayRecord, insert_plays
from apps.history.models import Play
from apps.music.models import Source, Track
from apps.music.services import TrackInfo

URI = "spotify:track:4uLU6hMCjMI75M1A2tKUQC"


def song(uri: str | None = URI, album: str | None = "Example Album") -> TrackInfo:
    return TrackInfo(name="Example Song", artist_name="Example Artist", album_name=album, uri=uri)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_same_play_twice_is_stored_once(user):
    record = PlayRecord(song(), at("2025-03-14T18:23:41"), Source.EXPORT_EXTENDED, 214306)
    first = insert_plays(user=user, records=[record, record])
    second = insert_plays(user=user, records=[record])
    assert (first.added, first.duplicates) == (1, 1)
    assert (second.added, second.duplicates) == (0, 1)
    assert Play.objects.for_user(user).count() == 1


def test_an_api_play_and_the_export_row_of_it_are_one_play_with_the_better_data(user):
    api = PlayRecord(song(), at("2025-03-14T18:23:41.306"), Source.API)
    export = PlayRecord(
        song(), at("2025-03-14T18:23:41"), Source.EXPORT_EXTENDED, 214306, reason_end="trackdone"
    )
    insert_plays(user=user, records=[api])
    result = insert_plays(user=user, records=[export])
    assert (result.added, result.duplicates, result.merged) == (0, 1, 1)
    play = Play.objects.for_user(user).get()
    assert play.played_at == at("2025-03-14T18:23:41.306")
    assert play.ms_played == 214306
    assert play.reason_end == "trackdone"


def test_the_export_first_then_the_api_keeps_the_api_milliseconds(user):
    insert_plays(
        user=user,
        records=[PlayRecord(song(), at("2025-03-14T18:23:41"), Source.EXPORT_EXTENDED, 214306)],
    )
    insert_plays(user=user, records=[PlayRecord(song(), at("2025-03-14T18:23:43.5"), Source.API)])
    play = Play.objects.for_user(user).get()
    assert (play.played_at, play.ms_played) == (at("2025-03-14T18:23:43.5"), 214306)


def test_two_plays_of_one_track_seconds_apart_in_one_source_are_two_plays(user):
    records = [
        PlayRecord(song(), at("2025-03-14T18:23:41"), Source.EXPORT_EXTENDED, 2000),
        PlayRecord(song(), at("2025-03-14T18:23:44"), Source.EXPORT_EXTENDED, 3000),
    ]
    assert insert_plays(user=user, records=records).added == 2


def test_an_account_data_row_matches_a_play_that_ended_within_its_minute(user):
    insert_plays(
        user=user,
        records=[PlayRecord(song(), at("2025-03-14T18:23:41"), Source.EXPORT_EXTENDED, 214306)],
    )
    account = PlayRecord(
        song(uri=None, album=None), at("2025-03-14T18:23:00"), Source.EXPORT_ACCOUNT
    )
    outside = PlayRecord(
        song(uri=None, album=None), at("2025-03-14T18:25:00"), Source.EXPORT_ACCOUNT
    )
    result = insert_plays(user=user, records=[account, outside])
    assert (result.added, result.duplicates) == (1, 1)
    # The row outside the minute resolves by name to the real track, not a local one.
    assert not Track.objects.filter(uri__startswith="local:").exists()
    assert Play.objects.for_user(user).filter(track__uri=URI).count() == 2


def test_a_track_known_only_by_name_gets_a_deterministic_local_id(user):
    record = PlayRecord(song(uri=None), at("2025-03-14T18:23:41"), Source.EXPORT_EXTENDED, 5000)
    insert_plays(user=user, records=[record])
    track = Track.objects.get()
    assert track.uri.startswith("local:") and len(track.uri) == len("local:") + 40
    assert track.primary_artist is not None and track.album is not None
    assert (track.primary_artist.name, track.album.name) == ("Example Artist", "Example Album")


def test_plays_of_other_users_never_match(user, other_user):
    record = PlayRecord(song(), at("2025-03-14T18:23:41"), Source.EXPORT_EXTENDED, 214306)
    insert_plays(user=user, records=[record])
    assert insert_plays(user=other_user, records=[record]).added == 1


def test_a_track_resolved_by_an_earlier_batch_is_not_looked_up_again(user):
    known: dict[str, int] = {}
    first = PlayRecord(song(), at("2025-03-14T18:23:41"), Source.EXPORT_EXTENDED, 214306)
    insert_plays(user=user, records=[first], known_tracks=known)
    track = Track.objects.get(uri=URI)
    assert known == {URI: track.pk}
    later = PlayRecord(song(), at("2025-03-15T18:23:41"), Source.EXPORT_EXTENDED, 214306)
    with CaptureQueriesContext(connection) as context:
        insert_plays(user=user, records=[later], known_tracks=known)
    # No lookup by uri nor insert of the track; the insert of the play still reads the track's
    # copies (apps.history.copies).
    catalogue = [q["sql"] for q in context.captured_queries if "music_track" in q["sql"]]
    assert not [sql for sql in catalogue if "uri" in sql]
    assert all("primary_artist_id" in sql for sql in catalogue)
    assert list(Play.objects.for_user(user).values_list("track_id", flat=True)) == [track.pk] * 2


def test_a_local_track_is_never_kept_between_batches(user):
    known: dict[str, int] = {}
    record = PlayRecord(song(uri=None), at("2025-03-14T18:23:41"), Source.EXPORT_EXTENDED, 1000)
    insert_plays(user=user, records=[record], known_tracks=known)
    assert known == {}


def test_the_portable_paths_stored_rows_carry_the_detail_fields_in_order():
    # The portable path fills them positionally from values_list("pk", "track_id", "played_at",
    # "source", *DETAIL_FIELDS): a field added to one and not the other would shift every value.
    names = tuple(field.name for field in fields(ingest._Stored))
    assert names == ("pk", "track_id", "played_at", "source", *ingest.DETAIL_FIELDS)
