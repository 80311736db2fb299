"""The ingest service on small ZIPs built in the test: formats, counts, dedup and privacy."""

from datetime import UTC, datetime

from apps.history.models import Play
from apps.imports import services
from apps.imports.models import ImportJob
from apps.music.models import Track
from tests.imports.conftest import account, chapter, episode, example_song, extended

AUDIO = "Spotify Extended Streaming History/Streaming_History_Audio_2024-2025_0.json"


def run(user, path) -> ImportJob:
    job = services.create_local_job(user=user, path=path, queue=False)
    result = services.run_import(job_id=job.pk)
    assert result is not None
    return result


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_an_extended_export_imports_every_play_with_exact_counts(user, export_zip):
    path = export_zip(
        {
            AUDIO: [
                extended("2025-03-14T18:23:41Z"),
                extended("2025-03-14T18:27:02Z", track="Other Song", uri="spotify:track:2"),
                extended("2025-03-14T18:23:41Z"),  # the same play twice in one file
            ],
            "Spotify Extended Streaming History/Streaming_History_Audio_2025_1.json": [
                extended("2025-03-14T18:27:02Z", track="Other Song", uri="spotify:track:2"),
                extended("2025-03-15T08:00:00Z", ms=1200, skipped=True, reason_end="fwdbtn"),
            ],
            "Spotify Extended Streaming History/ReadMeFirst_ExtendedStreamingHistory.pdf": b"%PDF",
        }
    )
    job = run(user, path)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert (job.records_seen, job.plays_added, job.duplicates) == (5, 3, 2)
    assert job.skipped == {}
    assert job.formats == ["extended"]
    assert job.ignored_files == [
        "Spotify Extended Streaming History/ReadMeFirst_ExtendedStreamingHistory.pdf"
    ]
    assert (job.earliest_play, job.latest_play) == (
        at("2025-03-14T18:23:41"),
        at("2025-03-15T08:00:00"),
    )
    assert job.progress_pct == 100.0
    plays = Play.objects.for_user(user).order_by("played_at")
    assert [(p.track.name, p.ms_played, p.source) for p in plays] == [
        ("Example Song", 214306, "export_extended"),
        ("Other Song", 214306, "export_extended"),
        ("Example Song", 1200, "export_extended"),
    ]
    short = plays.last()
    assert short is not None
    assert (short.skipped, short.reason_end, short.platform, short.conn_country) == (
        True,
        "fwdbtn",
        "android",
        "FR",
    )


def test_reimporting_the_same_export_adds_nothing(user, export_zip):
    files = {AUDIO: [extended("2025-03-14T18:23:41Z"), extended("2025-03-14T18:30:00Z")]}
    first = run(user, export_zip(files))
    second = run(user, export_zip(files))
    assert (first.plays_added, second.plays_added, second.duplicates) == (2, 0, 2)
    assert Play.objects.for_user(user).count() == 2


def test_account_data_and_podcasts(user, export_zip):
    path = export_zip(
        {
            "MyData/StreamingHistory_music_0.json": [
                account("2025-03-14 18:23", "Example Song", "Example Artist"),
                account("2025-03-14 18:27", "Other Song", "Example Artist", ms=5000),
            ],
            "MyData/StreamingHistory_podcast_0.json": [
                {
                    "endTime": "2025-03-15 07:00",
                    "podcastName": "The Show",
                    "episodeName": "Episode 1",
                    "msPlayed": 1_800_000,
                }
            ],
            "MyData/Userdata.json": {"username": "x"},
        }
    )
    job = run(user, path)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert (job.records_seen, job.plays_added) == (3, 3)
    assert job.formats == ["account_music", "account_podcast"]
    assert job.ignored_files == ["MyData/Userdata.json"]
    kinds = sorted(Play.objects.for_user(user).values_list("track__kind", "track__name"))
    assert kinds == [("episode", "Episode 1"), ("music", "Example Song"), ("music", "Other Song")]
    assert all(t.uri.startswith("local:") for t in Track.objects.all())
    show = Track.objects.get(kind="episode")
    assert show.album is not None and show.album.name == "The Show"
    assert show.primary_artist is None


def test_extended_episodes_are_their_own_kind(user, export_zip):
    path = export_zip({AUDIO: [episode("2025-03-14T07:00:00Z", "Ep", "Show", "spotify:episode:9")]})
    job = run(user, path)
    assert job.plays_added == 1
    track = Track.objects.get()
    assert track.album is not None
    assert (track.kind, track.uri, track.album.name) == ("episode", "spotify:episode:9", "Show")


def test_audiobook_chapters_are_their_own_kind_and_the_podcast_tool_ranks_their_books(
    user, export_zip
):
    from apps.history import selectors

    files = {
        AUDIO: [
            chapter("2025-03-14T07:00:00Z", "Chapter 1", "Dune", 600_000),
            chapter("2025-03-14T08:00:00Z", "Chapter 2", "Dune", 900_000),
            chapter("2025-03-14T09:00:00Z", "Chapter 1", "Emma", 1_800_000),
            chapter("2025-03-14T10:00:00Z", "Chapter 9", "Emma", 5_000),  # short: left out
            extended("2025-03-14T11:00:00Z"),
        ]
    }
    assert run(user, export_zip(files)).plays_added == 5
    dune = Track.objects.get(uri="spotify:chapter:D1")
    assert dune.album is not None
    assert (dune.kind, dune.name, dune.album.name) == ("chapter", "Chapter 1", "Dune")
    everything = selectors.resolve_window(user=user, days=0)
    podcasts = selectors.top_podcasts(user=user, window=everything)
    assert [(b.rank, b.name, b.plays, b.chapters, b.minutes) for b in podcasts.audiobooks] == [
        (1, "Emma", 1, 1, 30.0),
        (2, "Dune", 2, 2, 25.0),
    ]
    assert (podcasts.plays, podcasts.shows, podcasts.rule.short_plays_excluded) == (0, [], 1)
    music = selectors.top_albums(user=user, window=everything)
    assert [a.name for a in music.albums] == ["Example Album"]
    assert selectors.coverage(user=user, window=everything).podcast_plays_excluded == 4


def test_an_overlapping_export_adds_only_the_new_plays(user, export_zip):
    first = run(
        user,
        export_zip({AUDIO: [extended("2025-03-14T18:00:00Z"), extended("2025-03-14T18:10:00Z")]}),
    )
    second = run(
        user,
        export_zip(
            {
                AUDIO: [
                    extended("2025-03-14T18:10:00Z"),
                    extended("2025-03-14T18:20:00Z"),
                    extended("2025-03-14T18:30:00Z"),
                ]
            }
        ),
    )
    assert (first.plays_added, second.plays_added, second.duplicates) == (2, 2, 1)
    assert Play.objects.for_user(user).count() == 4


def test_an_export_overlapping_polled_api_plays_adds_no_duplicates(user, export_zip):
    from apps.history.ingest import PlayRecord, insert_plays
    from apps.music.models import Source

    song = example_song()
    insert_plays(
        user=user,
        records=[
            PlayRecord(song, at("2025-03-14T18:23:41.306"), Source.API),
            PlayRecord(song, at("2025-03-14T18:40:02.5"), Source.API),
        ],
    )
    files = {AUDIO: [extended("2025-03-14T18:23:41Z"), extended("2025-03-14T18:40:00Z")]}
    job = run(user, export_zip(files))
    again = run(user, export_zip(files))
    assert (job.plays_added, job.duplicates, again.plays_added, again.duplicates) == (0, 2, 0, 2)
    plays = Play.objects.for_user(user).order_by("played_at")
    assert [(p.played_at, p.ms_played) for p in plays] == [
        (at("2025-03-14T18:23:41.306"), 214306),
        (at("2025-03-14T18:40:02.5"), 214306),
    ]


def test_an_export_row_listed_twice_is_the_one_polled_play_it_matches(user, export_zip):
    """The row a stored play took is the same play each time it is listed, even a second off
    the play's time (rows of another time take another play, or are new)."""
    from apps.history.ingest import PlayRecord, insert_plays
    from apps.music.models import Source

    song = example_song()
    insert_plays(user=user, records=[PlayRecord(song, at("2025-03-14T18:23:42.1"), Source.API)])
    row = extended("2025-03-14T18:23:41Z", ms=95_000)
    other_file = AUDIO.replace("_0.json", "_1.json")
    job = run(user, export_zip({AUDIO: [row, row], other_file: [row]}))
    assert (job.plays_added, job.duplicates) == (0, 3)
    plays = Play.objects.for_user(user)
    assert [(p.played_at, p.ms_played, p.source) for p in plays] == [
        (at("2025-03-14T18:23:42.1"), 95_000, Source.API)
    ]


def test_an_account_play_given_an_extended_second_no_longer_spans_its_minute(
    user, export_zip, settings
):
    """Once an Extended row gives an Account Data play its second, the play is of that
    precision: the minute's other Extended play, in a later batch, is a play of its own, and
    importing both exports again adds nothing."""
    from apps.music.models import Source

    settings.IMPORT_BATCH_SIZE = 1
    account_zip = export_zip(
        {
            "StreamingHistory_music_0.json": [
                account("2025-03-14 10:00", "Example Song", "Example Artist", ms=31_000)
            ]
        }
    )
    extended_zip = export_zip(
        {
            AUDIO: [
                extended("2025-03-14T10:00:01Z", ms=31_000),
                extended("2025-03-14T10:00:45Z", ms=40_000),
            ]
        }
    )
    run(user, account_zip)
    job = run(user, extended_zip)
    assert (job.plays_added, job.duplicates) == (1, 1)
    expected = [
        (at("2025-03-14T10:00:01"), 31_000, Source.EXPORT_EXTENDED),
        (at("2025-03-14T10:00:45"), 40_000, Source.EXPORT_EXTENDED),
    ]
    plays = Play.objects.for_user(user).order_by("played_at")
    assert [(p.played_at, p.ms_played, p.source) for p in plays] == expected
    assert [run(user, z).plays_added for z in (extended_zip, account_zip)] == [0, 0]
    assert [(p.played_at, p.ms_played, p.source) for p in plays.all()] == expected


def test_the_first_batch_is_small_so_the_writer_starts_soon(export_zip, settings, monkeypatch):
    from apps.imports import parser

    settings.IMPORT_BATCH_SIZE = 4
    monkeypatch.setattr(services, "FIRST_BATCH", 2)
    path = export_zip({AUDIO: [extended(f"2025-03-14T10:00:{s:02}Z") for s in range(11)]})
    with parser.open_archive(str(path)) as archive:
        contents = parser.inspect_archive(archive)
        batches = list(services.read_batches(archive, contents, 0))
    assert [len(b.records) for b in batches] == [2, 4, 4, 1]
    assert [b.position for b in batches] == [2, 6, 10, 11]
    assert batches[1].records[0].played_at == at("2025-03-14T10:00:02")


def test_the_garbage_collector_pauses_during_an_import_and_resumes_after():
    import gc

    assert gc.isenabled()
    with services._no_collections():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with services._no_collections():
            pass
        assert not gc.isenabled()  # as it was
    finally:
        gc.enable()
