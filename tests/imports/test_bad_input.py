"""Every bad export the service refuses or repairs: a clear message, and no partial plays.

Whole-file faults end the job as failed with its message, and the plays of batches already
committed are removed. Record-level faults skip the record and count it by reason.
"""

import io
import json
import os
import zipfile
from datetime import UTC, datetime

import pytest
from django.db import connection

from apps.history.ingest import PlayRecord, insert_plays
from apps.history.models import Play, TrackTotal
from apps.imports import services
from apps.imports.models import ImportJob, MergedPlay
from apps.music.models import Source
from apps.music.services import TrackInfo
from tests.imports.conftest import build_zip, episode, example_song, extended

AUDIO = "Spotify Extended Streaming History/Streaming_History_Audio_2024_0.json"
AUDIO_2 = "Spotify Extended Streaming History/Streaming_History_Audio_2025_1.json"
GOOD = [extended("2024-03-14T18:23:41Z"), extended("2024-03-14T18:30:00Z", uri="spotify:track:2")]


@pytest.fixture(autouse=True)
def small_batches(settings):
    # Two records per batch: the good file's plays are committed before the bad file is read.
    settings.IMPORT_BATCH_SIZE = 2


def run_bytes(user, tmp_path, content: bytes) -> ImportJob:
    path = tmp_path / "my_spotify_data.zip"
    path.write_bytes(content)
    job = services.create_local_job(user=user, path=path, queue=False)
    result = services.run_import(job_id=job.pk)
    assert result is not None
    return result


def run(user, tmp_path, files) -> ImportJob:
    return run_bytes(user, tmp_path, build_zip(files))


def assert_failed(job: ImportJob, message: str) -> None:
    assert job.status == ImportJob.Status.FAILED
    assert job.error == message
    job.refresh_from_db()
    assert (job.plays_added, job.earliest_play, job.latest_play) == (0, None, None)
    assert Play.objects.count() == 0


def test_a_failed_import_puts_back_the_plays_it_merged_into(user, tmp_path):
    """Stored before the import: an API play, and an Account Data play of the same song. The
    import merges into both (the export's details; an Extended row of the song's album version
    takes the Account Data play, with its second and track), then fails: both are as they were."""
    song = example_song()
    api_at = datetime(2024, 3, 14, 10, 0, 30, 306000, tzinfo=UTC)
    account_at = datetime(2024, 3, 14, 12, 0, tzinfo=UTC)
    insert_plays(user=user, records=[PlayRecord(song, api_at, Source.API)])
    nameless = TrackInfo(name="Example Song", artist_name="Example Artist")
    insert_plays(
        user=user, records=[PlayRecord(nameless, account_at, Source.EXPORT_ACCOUNT, 180_000)]
    )
    state = ("track__uri", "played_at", "source", "ms_played", "reason_end", "platform")
    before = list(Play.objects.order_by("played_at").values_list(*state))
    assert before == [
        (song.uri, api_at, "api", None, "", ""),
        (song.uri, account_at, "export_account", 180_000, "", ""),
    ]
    merging = [
        extended("2024-03-14T10:00:30Z", ms=123_456),
        extended("2024-03-14T12:00:30Z", album="Album", uri="spotify:track:A1bum", ms=190_000),
    ]
    job = run(user, tmp_path, {AUDIO: merging, AUDIO_2: '[{"ts": "2024-03-15T0'})
    assert job.status == ImportJob.Status.FAILED and "is truncated" in job.error
    assert list(Play.objects.order_by("played_at").values_list(*state)) == before
    assert not MergedPlay.objects.exists()
    if connection.vendor == "postgresql":  # the totals followed the plays back
        totals = TrackTotal.objects.values_list("track__uri", "plays", "ms_long")
        assert list(totals) == [(song.uri, 2, 180_000)]


def test_a_failed_import_puts_back_a_play_whose_local_track_was_taken_over(user, tmp_path):
    """A play of a local track (no URI) took an Extended row, then a later batch brought the
    song's real track, which took over the local one and its plays: put back, the play keeps
    the real track."""
    nameless = TrackInfo(name="Example Song", artist_name="Example Artist")
    account_at = datetime(2024, 3, 14, 12, 0, tzinfo=UTC)
    insert_plays(
        user=user, records=[PlayRecord(nameless, account_at, Source.EXPORT_ACCOUNT, 180_000)]
    )
    assert Play.objects.get().track.uri.startswith("local:")
    records = [
        extended("2024-03-14T12:00:30Z", uri=None, ms=190_000),  # the local track's play
        extended("2024-03-14T13:00:00Z", track="Other Song", uri="spotify:track:2"),
        extended("2024-03-14T14:00:00Z"),  # the real track, in the second batch
        extended("2024-03-14T15:00:00Z", track="Other Song", uri="spotify:track:2"),
    ]
    job = run(user, tmp_path, {AUDIO: records, AUDIO_2: '[{"ts": "2024-03-15T0'})
    assert job.status == ImportJob.Status.FAILED and "is truncated" in job.error
    played = Play.objects.values_list("track__uri", "played_at", "source", "ms_played")
    assert list(played) == [
        ("spotify:track:4uLU6hMCjMI75M1A2tKUQC", account_at, "export_account", 180_000)
    ]
    assert not MergedPlay.objects.exists()


def test_a_finished_import_keeps_what_it_merged(user, tmp_path):
    api_at = datetime(2024, 3, 14, 10, 0, 30, 306000, tzinfo=UTC)
    insert_plays(user=user, records=[PlayRecord(example_song(), api_at, Source.API)])
    job = run(user, tmp_path, {AUDIO: [extended("2024-03-14T10:00:30Z", ms=123_456)]})
    assert (job.status, job.plays_added, job.duplicates) == ("succeeded", 0, 1)
    played = Play.objects.values_list("played_at", "source", "ms_played", "reason_end")
    assert list(played) == [(api_at, "api", 123_456, "trackdone")]
    assert not MergedPlay.objects.exists()


def test_a_file_over_the_size_limit(user, tmp_path, settings):
    settings.IMPORT_MAX_ZIP_SIZE_MB = 1
    content = build_zip({AUDIO: GOOD, "padding.bin": os.urandom(1024 * 1024 + 1)})
    job = run_bytes(user, tmp_path, content)
    assert_failed(job, "The file is larger than the 1 MB limit (IMPORT_MAX_ZIP_SIZE_MB).")


def test_more_records_than_the_cap(user, tmp_path, settings):
    settings.IMPORT_MAX_RECORDS = 3
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: GOOD})
    assert_failed(job, "The export holds more than 3 records (IMPORT_MAX_RECORDS); it was refused.")


def test_a_zip_bomb_by_total_size(user, tmp_path, settings):
    settings.IMPORT_MAX_UNCOMPRESSED_MB = 1
    job = run(user, tmp_path, {AUDIO: GOOD, "big.txt": "x" * (2 * 1024 * 1024)})
    assert_failed(
        job, "The ZIP would unpack to more than 1 MB; it was refused as a possible zip bomb."
    )


def test_a_zip_bomb_by_compression_ratio(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: GOOD, "zeros.json": "0" * (20 * 1024 * 1024)})
    assert_failed(
        job,
        "'zeros.json' is compressed more than 100 to 1; the ZIP was refused as a possible "
        "zip bomb.",
    )


@pytest.mark.parametrize("name", ["../Streaming_History_Audio_2024_0.json", "/etc/passwd"])
def test_zip_slip_paths(user, tmp_path, name):
    job = run(user, tmp_path, {AUDIO: GOOD, name: GOOD})
    assert_failed(
        job, f"The ZIP contains a file whose path leaves the archive ({name!r}); it was refused."
    )
    assert not (tmp_path.parent / "Streaming_History_Audio_2024_0.json").exists()


def test_a_nested_zip(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: GOOD, "inner/more.zip": build_zip({AUDIO: GOOD})})
    assert_failed(
        job,
        "The ZIP contains another archive ('inner/more.zip'). Upload the ZIP Spotify sent you, "
        "not an archive of archives.",
    )


def zip_with(info: zipfile.ZipInfo, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(AUDIO, json.dumps(GOOD))
        archive.writestr(info, data)
    return buffer.getvalue()


def set_encrypted_flag(content: bytes, name: str) -> bytes:
    """Mark a member encrypted in its local and central headers (zipfile can't encrypt)."""
    data = bytearray(content)
    for signature, flag_offset, name_offset in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            if data[start + name_offset : start + name_offset + len(name)] == name.encode():
                data[start + flag_offset] |= 0x1
            start += 4
    return bytes(data)


def test_an_encrypted_member(user, tmp_path):
    content = set_encrypted_flag(build_zip({AUDIO: GOOD, AUDIO_2: GOOD}), AUDIO_2)
    job = run_bytes(user, tmp_path, content)
    assert_failed(
        job,
        f"The ZIP contains an encrypted file ({AUDIO_2!r}). Spotify's exports are not "
        "encrypted; upload the ZIP exactly as Spotify sent it.",
    )


def test_a_symlink(user, tmp_path):
    info = zipfile.ZipInfo("link.json")
    info.external_attr = (0o120777 << 16) | 0x20
    job = run_bytes(user, tmp_path, zip_with(info, b"/etc/passwd"))
    assert_failed(job, "The ZIP contains a symbolic link ('link.json'); it was refused.")


def test_not_a_zip(user, tmp_path):
    job = run_bytes(user, tmp_path, b"%PDF-1.4 this is not a zip")
    assert_failed(
        job,
        "The file is not a ZIP archive (or it is damaged or incomplete). Upload the "
        "my_spotify_data.zip file Spotify sent you.",
    )


def test_an_empty_upload_is_not_a_zip(user, tmp_path):
    job = run_bytes(user, tmp_path, b"")
    assert job.error.startswith("The file is not a ZIP archive")
    assert Play.objects.count() == 0


def test_a_zip_with_no_spotify_files(user, tmp_path):
    job = run(user, tmp_path, {"Userdata.json": {"a": 1}, "Playlist1.json": {"playlists": []}})
    assert_failed(
        job,
        "This ZIP holds no Spotify listening history: expected files such as "
        "Streaming_History_Audio_2024.json (Extended streaming history) or "
        "StreamingHistory_music_0.json (Account data).",
    )


@pytest.mark.parametrize(
    "tail",
    [
        '{"ts": "2024-03-14T18:30:00Z", ',  # between fields
        '{"ts": "2024-03-14T18:3',  # inside a string
        '{"ts": "2024-03-14T18:30:00Z", "ms_played": 2143',  # inside a number
        '{"ts": "2024-03-14T18:30:00Z", "offline": tr',  # inside true, false or null
    ],
)
def test_truncated_json(user, tmp_path, tail):
    """Wherever the file was cut, the message says it was cut."""
    three = json.dumps([*GOOD, GOOD[0]])
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: three[:-1] + ", " + tail})
    assert_failed(
        job,
        f"{AUDIO_2} is truncated: its JSON ends after 3 records. Download the export again.",
    )


def test_json_missing_its_closing_bracket_is_truncated(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: json.dumps(GOOD)[:-1]})
    assert_failed(
        job,
        f"{AUDIO_2} is truncated: its JSON ends after 2 records. Download the export again.",
    )


def test_invalid_json_is_not_called_truncated(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: json.dumps(GOOD)[:-1] + "x]"})
    assert job.status == ImportJob.Status.FAILED
    assert job.error.startswith(f"{AUDIO_2} is not valid JSON (after 2 records): "), job.error
    assert Play.objects.count() == 0


def test_json_that_is_an_object_not_an_array(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: {"ts": "2024-01-01T00:00:00Z"}})
    assert_failed(job, f"{AUDIO_2} is not a JSON array of plays: it starts with '{{'.")


def test_json_an_array_of_something_else(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: [*GOOD, 42]})
    assert_failed(
        job, f"{AUDIO_2}: item 3 is not a JSON object; expected an array of play records."
    )


def test_a_file_of_objects_that_are_not_plays(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: [{"name": "x"}, {"name": "y"}, {}]})
    assert_failed(
        job,
        f"{AUDIO_2} does not look like a Spotify streaming history: none of its 3 records has "
        "a valid ts time.",
    )


def test_nan(user, tmp_path):
    bad = json.dumps(GOOD).replace("214306", "NaN", 1)
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: bad})
    assert_failed(
        job,
        f"{AUDIO_2} is not valid JSON (after 0 records): lexical error: invalid char in json "
        "text: NaN",
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("Infinity", "lexical error: invalid char in json text: Infinity"),
        ("undefined", "lexical error: invalid char in json text: undefined"),
        # Only a bare word is repeated: never a value of the record, such as an IP address.
        ("192.168.1.1", "lexical error: invalid char in json text."),
    ],
)
def test_invalid_json_names_the_word_it_stopped_at(user, tmp_path, value, shown):
    bad = json.dumps(GOOD).replace("214306", value, 1)
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: bad})
    assert_failed(job, f"{AUDIO_2} is not valid JSON (after 0 records): {shown}")


def damage(content: bytes, name: str) -> bytes:
    """The ZIP with one byte of name's data flipped, its directory intact."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        info = archive.getinfo(name)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data = bytearray(content)
    data[start + info.compress_size // 2] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"]
)
def test_a_member_damaged_in_the_zip(user, tmp_path, compression):
    content = build_zip({AUDIO: GOOD, AUDIO_2: GOOD}, compression=compression)
    job = run_bytes(user, tmp_path, damage(content, AUDIO_2))
    assert job.error.startswith(f"{AUDIO_2} is damaged in the ZIP: "), job.error
    assert_failed(job, job.error)


def file_with_text(text: bytes) -> bytes:
    """A history file whose second record's track name is the raw JSON text given."""
    bad = json.dumps(extended("2024-03-14T19:00:00Z", track="@")).encode().replace(b'"@"', text)
    return b"[" + json.dumps(GOOD[0]).encode() + b"," + bad + b"]"


def test_an_escaped_half_of_a_surrogate_pair(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: file_with_text(b'"Bad \\udc00 Song"')})
    assert job.error.startswith(
        f"{AUDIO_2} holds text that is not valid Unicode (after 1 records): 'utf-8' codec "
    ), job.error
    assert job.error.endswith(". Download the export again.")
    assert_failed(job, job.error)


def test_bytes_that_are_not_utf_8(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: file_with_text(b'"Bad \xff Song"')})
    assert_failed(
        job,
        f"{AUDIO_2} is not valid JSON (after 1 records): lexical error: invalid bytes in UTF8 "
        "string.",
    )


def test_an_empty_file(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: GOOD, AUDIO_2: b""})
    assert_failed(job, f"{AUDIO_2} is empty: it should hold a JSON array of plays.")


def test_wrong_types_and_absurd_values_are_skipped_and_counted(user, tmp_path):
    records = [
        extended("2024-03-14T18:00:00Z", ms="abc"),
        extended("2024-03-14T18:01:00Z", ms=-5),
        extended("2024-03-14T18:02:00Z", ms=10**12),
        extended("2024-03-14T18:03:00Z", shuffle="yes"),
        extended("2024-03-14T18:04:00Z", master_metadata_track_name=12),
        extended(12345),
        extended("14/03/2024 18:05"),
        extended("2024-02-30T18:06:00Z"),
        extended("2024-03-14T18:07:00Z", track=None, uri=None),
        extended("2024-03-14T18:08:00Z"),  # the one good record
    ]
    job = run(user, tmp_path, {AUDIO: records})
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert (job.records_seen, job.plays_added) == (10, 1)
    assert job.skipped == {
        "invalid_ms_played": 3,
        "invalid_field": 2,
        "invalid_timestamp": 3,
        "no_item": 1,
    }


def test_nul_characters_are_removed_from_strings(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: [extended("2024-03-14T18:00:00Z", track="Bad\u0000Song")]})
    assert job.plays_added == 1
    assert Play.objects.get().track.name == "BadSong"


def test_nul_characters_are_removed_from_every_string_field(user, tmp_path, settings):
    settings.IMPORT_KEEP_SENSITIVE = True
    nul = "\u0000"
    records = [
        extended(
            "2024-03-14T18:00:00Z",
            track=f"So{nul}ng",
            artist=f"Art{nul}ist",
            album=f"Al{nul}bum",
            reason_start=f"click{nul}row",
            reason_end=f"track{nul}done",
            platform=f"and{nul}roid",
            conn_country=f"{nul}F",
            user_agent_decrypted=f"agent{nul}",
            username=f"{nul}me",
        ),
        episode("2024-03-14T19:00:00Z", f"Epi{nul}sode", f"Sh{nul}ow", uri=None),
    ]
    job = run(user, tmp_path, {AUDIO: records})
    assert (job.status, job.plays_added, job.skipped) == ("succeeded", 2, {}), job.error
    stored = Play.objects.order_by("played_at").values_list(
        "track__name",
        "track__primary_artist__name",
        "track__album__name",
        "reason_start",
        "reason_end",
        "platform",
        "conn_country",
        "user_agent",
        "export_username",
    )
    assert list(stored) == [
        ("Song", "Artist", "Album", "clickrow", "trackdone", "android", "", "agent", "me"),
        ("Episode", None, "Show", "clickrow", "trackdone", "android", "FR", "", ""),
    ]


def test_uris_that_are_not_an_items_resolve_by_their_names(user, tmp_path):
    # Too long for the catalogue, a local file's URI with its names, and not a URI at all: each
    # record keeps its play under a local id made from its names.
    records = [
        extended("2024-03-14T18:00:00Z", track="Long", uri="spotify:track:" + "x" * 200),
        extended("2024-03-14T18:10:00Z", track="Local", uri="spotify:local:Me:Tape:Local:210"),
        extended("2024-03-14T18:20:00Z", track="Odd", uri="not a uri"),
        *GOOD,
    ]
    job = run(user, tmp_path, {AUDIO: records})
    assert (job.status, job.plays_added, job.skipped) == ("succeeded", 5, {}), job.error
    stored = dict(Play.objects.values_list("track__name", "track__uri"))
    assert {name: uri.startswith("local:") for name, uri in stored.items()} == {
        "Long": True,
        "Local": True,
        "Odd": True,
        "Example Song": False,
    }


def test_names_that_grow_past_the_limit_once_normalised(user, tmp_path):
    # U+FDFA decomposes into 18 characters: 100 of them make a 1 800-character key.
    ligatures = "\ufdfa" * 100
    records = [
        extended("2024-03-14T18:00:00Z", track=ligatures, artist=ligatures, album=ligatures),
        *GOOD,
    ]
    job = run(user, tmp_path, {AUDIO: records})
    assert (job.status, job.plays_added, job.skipped) == ("succeeded", 3, {}), job.error
    names = Play.objects.filter(played_at__minute=0).values_list(
        "track__name", "track__primary_artist__name", "track__album__name"
    )
    assert list(names) == [(ligatures,) * 3]
    keys = Play.objects.filter(played_at__minute=0).values_list(
        "track__name_key", "track__primary_artist__name_key", "track__album__name_key"
    )
    assert [tuple(map(len, row)) for row in keys] == [(512, 512, 512)]


def test_ten_thousand_character_names_are_skipped(user, tmp_path):
    records = [extended("2024-03-14T18:00:00Z", track="x" * 10_000), *GOOD]
    job = run(user, tmp_path, {AUDIO: records})
    assert (job.status, job.plays_added, job.skipped) == ("succeeded", 2, {"name_too_long": 1})


def test_dates_in_1970_or_the_future_are_skipped(user, tmp_path):
    records = [
        extended("1970-01-01T00:00:00Z"),
        extended("2999-01-01T00:00:00Z"),
        *GOOD,
    ]
    job = run(user, tmp_path, {AUDIO: records})
    assert (job.status, job.plays_added, job.skipped) == (
        "succeeded",
        2,
        {"date_out_of_range": 2},
    )


def test_a_byte_order_mark_is_accepted(user, tmp_path):
    job = run(user, tmp_path, {AUDIO: b"\xef\xbb\xbf" + json.dumps(GOOD).encode()})
    assert (job.status, job.plays_added) == ("succeeded", 2)
