"""The same play at the record's precision, on whichever database runs the tests (PostgreSQL's
fast path or the portable path): after an API play gave an export play its milliseconds,
re-importing the export still adds nothing."""

from datetime import UTC, datetime

from apps.history.ingest import PlayRecord, insert_plays
from apps.history.models import Play
from apps.music.models import Source
from apps.music.services import TrackInfo

URI = "spotify:track:4uLU6hMCjMI75M1A2tKUQC"


def song(uri: str | None = URI) -> TrackInfo:
    return TrackInfo(name="Example Song", artist_name="Example Artist", album_name="Album", uri=uri)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def export(text: str, ms: int = 214306) -> PlayRecord:
    return PlayRecord(song(), at(text), Source.EXPORT_EXTENDED, ms, reason_end="trackdone")


def account(text: str) -> PlayRecord:
    return PlayRecord(
        TrackInfo(name="Example Song", artist_name="Example Artist"),
        at(text),
        Source.EXPORT_ACCOUNT,
        214000,
    )


def test_reimporting_an_export_after_an_api_play_merged_into_it_adds_nothing(user):
    insert_plays(user=user, records=[export("2025-03-14T18:23:41")])
    merged = insert_plays(
        user=user, records=[PlayRecord(song(), at("2025-03-14T18:23:41.306"), Source.API)]
    )
    assert (merged.added, merged.merged) == (0, 1)
    assert Play.objects.get().played_at == at("2025-03-14T18:23:41.306")

    again = insert_plays(user=user, records=[export("2025-03-14T18:23:41")])
    assert (again.added, again.duplicates) == (0, 1)
    play = Play.objects.get()
    assert (play.played_at, play.ms_played) == (at("2025-03-14T18:23:41.306"), 214306)


def test_an_api_play_first_then_the_export_twice_is_one_play(user):
    insert_plays(user=user, records=[PlayRecord(song(), at("2025-03-14T18:23:43.5"), Source.API)])
    first = insert_plays(user=user, records=[export("2025-03-14T18:23:41")])
    second = insert_plays(user=user, records=[export("2025-03-14T18:23:41")])
    assert (first.added, first.merged, second.added, second.duplicates) == (0, 1, 0, 1)
    play = Play.objects.get()
    assert (play.played_at, play.ms_played, play.reason_end) == (
        at("2025-03-14T18:23:43.5"),
        214306,
        "trackdone",
    )


def test_account_data_again_after_it_merged_into_an_extended_play_adds_nothing(user):
    insert_plays(user=user, records=[account("2025-03-14T18:23")])
    merged = insert_plays(user=user, records=[export("2025-03-14T18:23:41")])
    assert (merged.added, merged.merged) == (0, 1)
    assert Play.objects.get().played_at == at("2025-03-14T18:23:41")
    again = insert_plays(user=user, records=[account("2025-03-14T18:23")])
    assert (again.added, again.duplicates) == (0, 1)
    assert Play.objects.count() == 1


def test_the_nearest_of_two_candidate_plays_is_the_match(user):
    insert_plays(
        user=user,
        records=[
            export("2025-03-14T18:23:37", ms=1000),
            export("2025-03-14T18:23:44", ms=2000),
        ],
    )
    result = insert_plays(
        user=user, records=[PlayRecord(song(), at("2025-03-14T18:23:42.9"), Source.API)]
    )
    assert (result.added, result.merged) == (0, 1)
    assert sorted(Play.objects.values_list("played_at", "ms_played")) == [
        (at("2025-03-14T18:23:37"), 1000),
        (at("2025-03-14T18:23:42.9"), 2000),
    ]


def test_a_batch_mixing_sources_matches_across_them(user):
    result = insert_plays(
        user=user,
        records=[
            export("2025-03-14T18:23:41"),
            PlayRecord(song(), at("2025-03-14T18:23:41.306"), Source.API),
        ],
    )
    assert (result.added, result.duplicates) == (1, 1)
    assert Play.objects.get().played_at == at("2025-03-14T18:23:41.306")


def test_a_new_play_outside_the_tolerance_is_added(user):
    insert_plays(user=user, records=[export("2025-03-14T18:23:41")])
    result = insert_plays(
        user=user, records=[PlayRecord(song(), at("2025-03-14T18:23:47"), Source.API)]
    )
    assert result.added == 1
    assert Play.objects.count() == 2


def test_the_tolerance_is_the_setting_and_includes_its_edge(user, settings):
    def api(text: str) -> PlayRecord:
        return PlayRecord(song(), at(text), Source.API)

    settings.DEDUP_TOLERANCE_SECONDS = 5
    insert_plays(user=user, records=[export("2025-03-14T18:23:41")])
    edge = insert_plays(user=user, records=[api("2025-03-14T18:23:46")])  # exactly 5 s
    beyond = insert_plays(user=user, records=[api("2025-03-14T19:00:06.001")])
    insert_plays(user=user, records=[export("2025-03-14T19:00:01")])
    assert (edge.added, edge.merged) == (0, 1)
    assert beyond.added == 1
    assert Play.objects.filter(played_at__hour=19).count() == 2  # 5.001 s apart: two plays
    settings.DEDUP_TOLERANCE_SECONDS = 10
    wider = insert_plays(user=user, records=[api("2025-03-14T20:00:09")])
    merged = insert_plays(user=user, records=[export("2025-03-14T20:00:00")])
    assert (wider.added, merged.added, merged.merged) == (1, 0, 1)
    assert Play.objects.filter(played_at__hour=20).get().ms_played == 214306
