"""Each export format on a small ZIP: detection, counts, privacy and offline timestamps."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection

from apps.history.models import Play, TrackTotal
from apps.imports import services
from apps.imports.models import ImportJob
from apps.imports.parser import detect_format, inspect_archive, open_archive
from apps.music.models import Track
from apps.music.normalize import local_track_uri
from tests.imports.conftest import account, build_zip, episode, extended


def run(user, path) -> ImportJob:
    job = services.create_local_job(user=user, path=path, queue=False)
    result = services.run_import(job_id=job.pk)
    assert result is not None
    assert result.status == ImportJob.Status.SUCCEEDED, result.error
    return result


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("Spotify Extended Streaming History/Streaming_History_Audio_2014-2016_0.json", "extended"),
        ("a/b/Streaming_History_Video_2020-2024.json", "extended"),
        ("MyData/endsong_3.json", "extended"),
        ("endsong.json", "extended"),
        ("Spotify Account Data/StreamingHistory_music_0.json", "account_music"),
        ("MyData/StreamingHistory12.json", "account_music"),
        ("StreamingHistory_podcast_1.json", "account_podcast"),
        ("MyData/Userdata.json", None),
        ("Playlist1.json", None),
        ("ReadMeFirst_ExtendedStreamingHistory.pdf", None),
        ("Streaming_History_Audio_2024.json.bak", None),
    ],
)
def test_formats_are_detected_by_basename_anywhere(name, fmt):
    assert detect_format(name) == fmt


def test_files_are_read_in_the_order_spotify_numbers_them(tmp_path):
    """Extended files before Account Data, each in its numbering: `_10` after `_9`."""
    names = [
        "Spotify Account Data/StreamingHistory_music_1.json",
        "Spotify Account Data/StreamingHistory_music_0.json",
        *(f"Extended/Streaming_History_Audio_2019-2020_{n}.json" for n in (10, 9, 2, 11)),
        "Extended/Streaming_History_Video_2020.json",
    ]
    path = tmp_path / "export.zip"
    path.write_bytes(build_zip({name: [] for name in names}))
    with open_archive(str(path)) as archive:
        members = [m.name.rsplit("/", 1)[1] for m in inspect_archive(archive).members]
    assert members == [
        *(f"Streaming_History_Audio_2019-2020_{n}.json" for n in (2, 9, 10, 11)),
        "Streaming_History_Video_2020.json",
        "StreamingHistory_music_0.json",
        "StreamingHistory_music_1.json",
    ]


def podcast(end_time: str, episode_name: str, show: str, ms: int = 1_200_000) -> dict[str, Any]:
    """One Account Data podcast row: no URI, the show in place of an artist."""
    return {"endTime": end_time, "podcastName": show, "episodeName": episode_name, "msPlayed": ms}


SONGS = ("Example Song", "Other Song", "Third Song")
EPISODES = ("Pilot", "Second", "Third")
EXTENDED_TIMES = ("2024-03-14T18:23:41Z", "2024-03-14T18:27:02Z", "2024-03-15T08:00:00Z")
ACCOUNT_TIMES = ("2024-03-14 18:23", "2024-03-14 18:27", "2024-03-15 08:00")


def _song(when: str, name: str, n: int) -> dict[str, Any]:
    return extended(when, track=name, uri=f"spotify:track:{n}")


def _video(when: str, name: str, n: int) -> dict[str, Any]:
    return episode(when, name, "A Show", f"spotify:episode:{n}")


def _account_song(when: str, name: str, n: int) -> dict[str, Any]:
    return account(when, name, "Example Artist")


def _account_episode(when: str, name: str, n: int) -> dict[str, Any]:
    return podcast(when, name, "A Show")


# Filename form: its format, how one of its records is written, its times, and its items.
FORMS = {
    "Streaming_History_Audio_2024_{n}.json": ("extended", _song, EXTENDED_TIMES, SONGS),
    "Streaming_History_Video_2024_{n}.json": ("extended", _video, EXTENDED_TIMES, EPISODES),
    "endsong_{n}.json": ("extended", _song, EXTENDED_TIMES, SONGS),
    "StreamingHistory_music_{n}.json": ("account_music", _account_song, ACCOUNT_TIMES, SONGS),
    "StreamingHistory{n}.json": ("account_music", _account_song, ACCOUNT_TIMES, SONGS),
    "StreamingHistory_podcast_{n}.json": (
        "account_podcast",
        _account_episode,
        ACCOUNT_TIMES,
        EPISODES,
    ),
}


@pytest.mark.parametrize("form", FORMS)
def test_each_filename_form_imports_exact_counts_deduplicated_within_and_across_files(
    user, export_zip, form
):
    fmt, record, times, names = FORMS[form]
    a, b, c = (
        record(when, name, n) for n, (when, name) in enumerate(zip(times, names, strict=True))
    )
    path = export_zip(
        {
            "MyData/" + form.format(n=0): [a, b, a],  # a twice in one file
            "MyData/" + form.format(n=1): [b, c],  # b again in the other file
        }
    )
    job = run(user, path)
    assert (job.records_seen, job.plays_added, job.duplicates, job.skipped) == (5, 3, 2, {})
    assert job.formats == [fmt]
    plays = Play.objects.for_user(user).order_by("played_at")
    assert [p.track.name for p in plays] == list(names)
    assert {p.track.kind for p in plays} == {"episode" if names is EPISODES else "music"}


def test_old_endsong_files_with_decrypted_fields(user, export_zip):
    old = extended(
        "2019-10-15T09:03:44Z",
        track="Old Song",
        artist="Old Artist",
        album="Old Album",
        uri="spotify:track:6pHLEjP6LdsoP31jZDNc6e",
        username="exampleuser",
        ip_addr_decrypted="198.51.100.7",
        user_agent_decrypted="unknown",
        offline_timestamp=1571130026045,
    )
    del old["ip_addr"]
    job = run(user, export_zip({"MyData/endsong_0.json": [old]}))
    assert (job.formats, job.plays_added) == (["extended"], 1)
    play = Play.objects.select_related("track__primary_artist", "track__album").get()
    names = Play.objects.values_list(
        "track__name", "track__primary_artist__name", "track__album__name"
    ).get()
    assert names == ("Old Song", "Old Artist", "Old Album")
    assert play.played_at == datetime(2019, 10, 15, 9, 3, 44, tzinfo=UTC)


def test_video_history_is_read_like_audio(user, export_zip):
    job = run(
        user,
        export_zip(
            {"X/Streaming_History_Video_2023-2024.json": [extended("2024-01-02T03:04:05Z")]}
        ),
    )
    assert (job.formats, job.plays_added) == (["extended"], 1)


def test_old_account_data_names(user, export_zip):
    job = run(
        user,
        export_zip({"MyData/StreamingHistory0.json": [account("2020-01-01 10:00", "S", "A")]}),
    )
    assert (job.formats, job.plays_added) == (["account_music"], 1)
    track = Play.objects.get().track
    assert track.uri == local_track_uri("A", "S", None)
    assert Play.objects.get().source == "export_account"


def test_ip_user_agent_and_username_are_dropped_by_default(user, export_zip):
    record = extended(
        "2019-10-15T09:03:44Z", username="exampleuser", user_agent_decrypted="Mozilla/5.0"
    )
    run(user, export_zip({"endsong_0.json": [record]}))
    play = Play.objects.get()
    assert (play.ip_addr, play.user_agent, play.export_username) == (None, "", "")


def test_sensitive_fields_are_kept_with_the_setting(user, export_zip, settings):
    settings.IMPORT_KEEP_SENSITIVE = True
    record = extended(
        "2019-10-15T09:03:44Z", username="exampleuser", user_agent_decrypted="Mozilla/5.0"
    )
    run(user, export_zip({"endsong_0.json": [record]}))
    play = Play.objects.get()
    assert (play.ip_addr, play.user_agent, play.export_username) == (
        "203.0.113.42",
        "Mozilla/5.0",
        "exampleuser",
    )


@pytest.mark.parametrize("keep", [False, True])
def test_the_older_exports_ip_addr_decrypted_is_treated_as_ip_addr(
    user, export_zip, settings, keep
):
    settings.IMPORT_KEEP_SENSITIVE = keep
    record = extended("2015-10-15T09:03:44Z")
    record["ip_addr_decrypted"] = record.pop("ip_addr")
    run(user, export_zip({"endsong_0.json": [record]}))
    assert Play.objects.get().ip_addr == ("203.0.113.42" if keep else None)


def test_offline_timestamp_in_seconds_milliseconds_or_null_never_moves_the_play(user, export_zip):
    records = [
        extended("2025-03-14T18:00:00Z", offline=True, offline_timestamp=1741975000),
        extended("2025-03-14T18:10:00Z", offline=True, offline_timestamp=1741975600123),
        extended("2025-03-14T18:20:00Z", offline=False, offline_timestamp=0),
        extended("2025-03-14T18:30:00Z", offline=False, offline_timestamp=None),
    ]
    job = run(user, export_zip({"Streaming_History_Audio_2025.json": records}))
    assert (job.plays_added, job.skipped) == (4, {})
    plays = Play.objects.order_by("played_at")
    assert [(p.played_at.minute, p.offline) for p in plays] == [
        (0, True),
        (10, True),
        (20, False),
        (30, False),
    ]


def test_rows_without_uris_get_local_ids_that_merge_into_the_real_track(user, export_zip):
    account_zip = export_zip(
        {
            "StreamingHistory_music_0.json": [
                account("2025-03-14 18:23", "Example Song", "Example Artist"),
                account("2025-03-15 09:00", "Example Song", "Example Artist"),
            ]
        }
    )
    run(user, account_zip)
    local = Track.objects.get()
    assert local.uri == local_track_uri("Example Artist", "Example Song", None)

    # The extended export knows the real track: the local one is folded into it, and the
    # Account Data row of 18:23 is the same play as the extended row of 18:23:41, which gives
    # it its second and its details.
    job = run(
        user,
        export_zip({"Streaming_History_Audio_2025.json": [extended("2025-03-14T18:23:41Z")]}),
    )
    assert (job.plays_added, job.duplicates) == (0, 1)
    assert not Track.objects.filter(uri__startswith="local:").exists()
    plays = Play.objects.for_user(user).order_by("played_at")
    assert [(p.track.uri, p.played_at, p.reason_end) for p in plays] == [
        (
            "spotify:track:4uLU6hMCjMI75M1A2tKUQC",
            datetime(2025, 3, 14, 18, 23, 41, tzinfo=UTC),
            "trackdone",
        ),
        (
            "spotify:track:4uLU6hMCjMI75M1A2tKUQC",
            datetime(2025, 3, 15, 9, 0, tzinfo=UTC),
            "",
        ),
    ]

    # Importing the Account Data again now resolves to the real track and adds nothing.
    again = run(user, account_zip)
    assert (again.plays_added, again.duplicates) == (0, 2)
    assert Play.objects.for_user(user).count() == 2


def test_a_batch_that_brings_the_real_track_of_a_local_one_it_also_uses(user, export_zip):
    run(
        user,
        export_zip(
            {"StreamingHistory_music_0.json": [account("2025-03-14 10:00", "Song", "Artist")]}
        ),
    )
    nameless = extended("2025-03-14T11:00:00Z", track="Song", artist="Artist", album=None, uri=None)
    real = extended("2025-03-14T12:00:00Z", track="Song", artist="Artist", uri="spotify:track:9")
    job = run(user, export_zip({"Streaming_History_Audio_2025.json": [nameless, real]}))
    assert job.plays_added == 2
    assert list(Track.objects.values_list("uri", flat=True)) == ["spotify:track:9"]
    assert Play.objects.for_user(user).filter(track__uri="spotify:track:9").count() == 3


SINGLE, ALBUM = "spotify:track:5ingleVersion00000000", "spotify:track:A1bumVersion000000000"


@pytest.mark.parametrize("account_first", [False, True], ids=["extended_first", "account_first"])
def test_an_account_data_row_matches_a_play_of_any_track_of_its_artist_and_name(
    user, export_zip, account_first
):
    """One song played from its single and from its album: two tracks with one artist and
    name. Account Data names neither, so each of its rows is the play of either that ended in
    its minute, whichever export comes first; the plays keep the Extended tracks and seconds."""
    extended_zip = export_zip(
        {
            "Streaming_History_Audio_2024.json": [
                extended("2024-01-01T10:00:30Z", "Song", "Artist", "Single", SINGLE, ms=200_000),
                extended("2024-01-01T12:00:30Z", "Song", "Artist", "Album", ALBUM, ms=190_000),
            ]
        }
    )
    account_zip = export_zip(
        {
            "StreamingHistory_music_0.json": [
                account("2024-01-01 10:00", "Song", "Artist", ms=200_000),
                account("2024-01-01 12:00", "Song", "Artist", ms=190_000),
            ]
        }
    )
    first, second = (account_zip, extended_zip) if account_first else (extended_zip, account_zip)
    assert run(user, first).plays_added == 2
    job = run(user, second)
    assert (job.plays_added, job.duplicates) == (0, 2)
    expected = [
        (SINGLE, datetime(2024, 1, 1, 10, 0, 30, tzinfo=UTC), "export_extended", 200_000),
        (ALBUM, datetime(2024, 1, 1, 12, 0, 30, tzinfo=UTC), "export_extended", 190_000),
    ]
    plays = Play.objects.for_user(user).order_by("played_at")
    assert [(p.track.uri, p.played_at, p.source, p.ms_played) for p in plays] == expected
    assert not Track.objects.filter(uri__startswith="local:").exists()
    # Both exports again add nothing.
    for path in (extended_zip, account_zip):
        again = run(user, path)
        assert (again.plays_added, again.duplicates) == (0, 2)
    assert [(p.track.uri, p.played_at, p.source, p.ms_played) for p in plays.all()] == expected
    if connection.vendor == "postgresql":  # the totals followed the play to its track
        totals = TrackTotal.objects.filter(user=user).values_list("track__uri", "plays")
        assert sorted(totals) == [(SINGLE, 1), (ALBUM, 1)]


EPISODE_URI = "spotify:episode:hpoO"


def test_account_podcast_rows_match_the_extended_episodes_they_are(user, export_zip):
    """Same show and episode name, ended in that minute: the same play, whichever comes first."""
    extended_zip = export_zip(
        {
            "Streaming_History_Audio_2024.json": [
                episode("2024-05-01T16:37:04Z", "Episode 29", "Show 6", EPISODE_URI),
                # Another show's episode of the same name is another item.
                episode("2024-05-01T18:00:00Z", "Episode 29", "Show 7", "spotify:episode:x7"),
            ]
        }
    )
    account_zip = export_zip(
        {
            "StreamingHistory_podcast_0.json": [
                podcast("2024-05-01 16:37", "Episode 29", "Show 6"),
                podcast("2024-05-02 08:00", "Episode 29", "Show 6"),  # heard again
            ]
        }
    )
    run(user, extended_zip)
    job = run(user, account_zip)
    assert (job.plays_added, job.duplicates) == (1, 1)
    plays = Play.objects.for_user(user).order_by("played_at")
    assert [(p.track.uri, p.played_at) for p in plays] == [
        (EPISODE_URI, datetime(2024, 5, 1, 16, 37, 4, tzinfo=UTC)),
        ("spotify:episode:x7", datetime(2024, 5, 1, 18, 0, tzinfo=UTC)),
        (EPISODE_URI, datetime(2024, 5, 2, 8, 0, tzinfo=UTC)),
    ]
    assert not Track.objects.filter(uri__startswith="local:").exists()


def test_a_local_episode_folds_into_the_real_one_an_extended_export_brings(user, export_zip):
    run(
        user,
        export_zip(
            {"StreamingHistory_podcast_0.json": [podcast("2024-05-01 16:37", "Ep 1", "The Show")]}
        ),
    )
    local = Track.objects.get()
    assert (local.uri, local.kind) == (local_track_uri(None, "Ep 1", "The Show"), "episode")
    job = run(
        user,
        export_zip(
            {
                "Streaming_History_Audio_2024.json": [
                    episode("2024-05-01T16:37:30Z", "Ep 1", "The Show", EPISODE_URI)
                ]
            }
        ),
    )
    assert (job.plays_added, job.duplicates) == (0, 1)
    play = Play.objects.for_user(user).get()
    assert (play.track.uri, play.played_at) == (
        EPISODE_URI,
        datetime(2024, 5, 1, 16, 37, 30, tzinfo=UTC),
    )
    assert list(Track.objects.values_list("uri", flat=True)) == [EPISODE_URI]


def test_two_plays_ending_in_one_minute_stay_two_whichever_export_comes_first(
    user, other_user, export_zip
):
    """A stored play takes at most one row of an import beyond its own exact time: the second
    Extended play of a minute is not folded into an Account Data play another row already is."""
    extended_zip = export_zip(
        {
            "Streaming_History_Audio_2026.json": [
                extended("2026-10-05T10:00:01Z", ms=31_000),
                extended("2026-10-05T10:00:45Z", ms=40_000),
            ]
        }
    )
    account_zip = export_zip(
        {
            "StreamingHistory_music_0.json": [
                account("2026-10-05 10:00", "Example Song", "Example Artist", ms=31_000),
                account("2026-10-05 10:00", "Example Song", "Example Artist", ms=40_000),
            ]
        }
    )
    run(user, extended_zip)
    again = run(user, account_zip)
    assert (again.plays_added, again.duplicates) == (0, 2)
    run(other_user, account_zip)  # one play: both rows have the same user, track and time
    later = run(other_user, extended_zip)
    assert (later.plays_added, later.duplicates) == (1, 1)
    for person in (user, other_user):
        plays = Play.objects.for_user(person).order_by("played_at")
        assert [(p.played_at.second, p.ms_played) for p in plays] == [(1, 31_000), (45, 40_000)]
