"""What keeps an import's memory flat: shared item and string objects, one batch read ahead."""

import random
import threading
import time
from typing import Any

from apps.imports import parser, services
from tests.imports.conftest import account, episode, extended


def _copy(raw: dict) -> dict:
    """The record with every string a new object, as the JSON parser gives each record."""
    return {k: "".join(v) if isinstance(v, str) else v for k, v in raw.items()}


def test_records_of_one_item_share_its_track_info_and_repeated_strings():
    normaliser = parser.Normaliser()
    song = extended("2024-03-01T10:00:00Z", platform="android", conn_country="DE")
    first = normaliser.extended(_copy(song))
    again = normaliser.extended(_copy({**song, "ts": "2024-03-01T10:04:00Z"}))
    other_album = normaliser.extended(_copy({**song, "master_metadata_album_album_name": "Live"}))
    show = normaliser.extended(_copy(episode("2024-03-01T11:00:00Z", "Ep 1", "Show", None)))
    listed = normaliser.account_music(
        _copy(account("2024-03-01 12:00", "Example Song", "Example Artist"))
    )

    assert again.track is first.track
    assert (first.track.name, first.track.artist_name, first.track.album_name) == (
        "Example Song",
        "Example Artist",
        "Example Album",
    )
    assert first.track.uri == "spotify:track:4uLU6hMCjMI75M1A2tKUQC"
    assert other_album.track is not first.track
    assert other_album.track.album_name == "Live"
    assert (show.track.kind, show.track.album_name, show.track.artist_name) == (
        "episode",
        "Show",
        None,
    )
    # Account Data has no album or URI: the same names are another item.
    assert listed.track is not first.track
    assert (listed.track.name, listed.track.album_name, listed.track.uri) == (
        "Example Song",
        None,
        None,
    )
    assert again.platform is first.platform and first.platform == "android"
    assert again.conn_country is first.conn_country and first.conn_country == "DE"
    assert again.played_at != first.played_at


def _outcome(normalise, raw: dict):
    """What a record normalises to (its fields, the track's as a tuple), or its skip reason."""
    try:
        record = normalise(raw)
    except parser.SkipRecord as skip:
        return skip.reason
    track = record.track
    return (
        (track.name, track.artist_name, track.album_name, track.uri, track.kind),
        *(getattr(record, name) for name in record.__slots__ if name != "track"),
    )


def test_repeated_raw_values_normalise_as_if_seen_first():
    # Songs and details are looked up by their raw values once seen: each record, whatever came
    # before it, must give what a new normaliser gives it. The values include every JSON type,
    # the ones equal across types (1, 1.0 and true), unhashable ones and a name too long.
    names = ["Song", " Song ", "Song\u0000", "", None, 1, True, 1.0, ["Song"], {"a": 1}, "x" * 600]
    uris = ["spotify:track:4uLU6hMCjMI75M1A2tKUQC", "not a uri", None, 1, ["u"]]
    texts = ["clickrow", "", None, 1, True, ["x"], "a" * 300]
    countries = ["DE", "de", "", None, 1, True, ["DE"], "DEU"]
    flags = [True, False, None, 1, 0, 1.0, "true"]
    pools: dict[str, list[Any]] = {
        "master_metadata_track_name": names,
        "master_metadata_album_artist_name": names,
        "master_metadata_album_album_name": names,
        "spotify_track_uri": uris,
        "reason_start": texts,
        "reason_end": texts,
        "platform": texts,
        "conn_country": countries,
        "skipped": flags,
        "shuffle": flags,
        "offline": flags,
        "episode_name": ["Ep", None, 2],
        "episode_show_name": ["Show", None, ["Show"]],
    }
    rng = random.Random(7)
    shared = parser.Normaliser()
    latest = shared.latest
    outcomes = set()
    for i in range(3000):
        raw = extended(f"2024-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z")
        raw.update({key: rng.choice(pool) for key, pool in pools.items() if rng.random() < 0.6})
        expected = _outcome(parser.Normaliser(latest=latest).extended, _copy(raw))
        assert _outcome(shared.extended, _copy(raw)) == expected, raw
        outcomes.add(expected if isinstance(expected, str) else "kept")
    assert outcomes == {"kept", "invalid_field", "name_too_long", "no_item"}
    assert shared.songs and shared.details


def test_the_shared_objects_are_bounded(monkeypatch):
    monkeypatch.setattr(parser, "SHARED_MAX", 3)
    normaliser = parser.Normaliser()
    for i in range(10):
        record = normaliser.extended(
            extended("2024-03-01T10:00:00Z", track=f"Song {i}", uri=None, platform=f"p{i}")
        )
        assert (record.track.name, record.platform) == (f"Song {i}", f"p{i}")
        assert len(normaliser.items) <= 3
        assert len(normaliser.strings) <= 3
        assert len(normaliser.songs) <= 3
        assert len(normaliser.details) <= 3


def test_the_reader_holds_one_batch_ahead_of_the_writer():
    produced: list[int] = []

    def batches():
        for i in range(5):
            produced.append(i)
            yield i

    def read_up_to(count: int) -> None:
        """Wait until the reader has read `count` batches, then give it time to read more."""
        deadline = time.monotonic() + 10
        while len(produced) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)

    read = services._read_ahead(batches())
    assert next(read) == 0
    read_up_to(2)
    # The writer holds batch 0 and batch 1 waits: batch 2 is not read yet.
    assert produced == [0, 1]
    assert next(read) == 1
    read_up_to(3)
    assert produced == [0, 1, 2]
    assert list(read) == [2, 3, 4]


def test_a_writer_that_stops_early_stops_the_reader():
    def batches():
        yield from range(100)

    read = services._read_ahead(batches())
    assert next(read) == 0
    read.close()  # type: ignore[attr-defined]
    assert not [t for t in threading.enumerate() if t.name == "import-reader"]
