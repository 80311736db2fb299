"""A realistic, reproducible Extended Streaming History export, for the demo and the benchmarks.

Artists and tracks follow Zipf distributions (a few favourites, a long tail), about 5% of plays
are podcast episodes, about a fifth are skips, and a few rows have no item at all, as in real
exports. Files hold 15 000 records each, like Spotify's.
"""

from __future__ import annotations

import json
import random
import string
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import accumulate, islice
from pathlib import Path
from typing import Any

RECORDS_PER_FILE = 15_000
FOLDER = "Spotify Extended Streaming History"
_BASE62 = string.digits + string.ascii_letters
PLATFORMS = ["android", "ios", "windows", "osx", "web_player", "linux"]
COUNTRIES = ["FR", "DE", "GB", "US", "ES", "NL", "SE"]


def _spotify_id(rng: random.Random) -> str:
    return "".join(rng.choices(_BASE62, k=22))


def _zipf_weights(n: int, s: float) -> list[float]:
    return list(accumulate(1 / (rank**s) for rank in range(1, n + 1)))


def extended_record(
    ts: str,
    *,
    ms_played: Any,
    track: str | None = None,
    artist: str | None = None,
    album: str | None = None,
    uri: str | None = None,
    episode: str | None = None,
    show: str | None = None,
    episode_uri: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One Extended Streaming History record, with every key Spotify writes; `fields` override
    the play details (platform, reason_start, skipped, offline…)."""
    record: dict[str, Any] = {
        "ts": ts,
        "platform": "android",
        "ms_played": ms_played,
        "conn_country": "FR",
        "ip_addr": "203.0.113.42",
        "master_metadata_track_name": track,
        "master_metadata_album_artist_name": artist,
        "master_metadata_album_album_name": album,
        "spotify_track_uri": uri,
        "episode_name": episode,
        "episode_show_name": show,
        "spotify_episode_uri": episode_uri,
        "audiobook_title": None,
        "audiobook_uri": None,
        "audiobook_chapter_uri": None,
        "audiobook_chapter_title": None,
        "reason_start": "clickrow",
        "reason_end": "trackdone",
        "shuffle": False,
        "skipped": False,
        "offline": False,
        "offline_timestamp": 0,
        "incognito_mode": False,
    }
    record.update(fields)
    return record


def write_export(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records (in time order) as an export ZIP, RECORDS_PER_FILE to a file, named as
    Spotify names them, beside the PDF and an Account Data file; the number of files."""
    files = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(f"{FOLDER}/ReadMeFirst_ExtendedStreamingHistory.pdf", b"%PDF-1.4 demo")
        items = iter(records)
        while rows := list(islice(items, RECORDS_PER_FILE)):
            first, last = rows[0]["ts"][:4], rows[-1]["ts"][:4]
            archive.writestr(
                f"{FOLDER}/Streaming_History_Audio_{first}-{last}_{files}.json",
                json.dumps(rows, indent=1),
            )
            files += 1
        archive.writestr("Spotify Account Data/Userdata.json", json.dumps({"username": "demo"}))
    return files


def write_demo_export(path: str | Path, *, records: int, seed: int = 1) -> dict[str, Any]:
    """Write the ZIP; return what it holds (records, files, tracks, episodes)."""
    rng = random.Random(seed)
    n_artists = max(50, min(5_000, records // 100))
    n_tracks = max(200, min(60_000, records // 8))
    artists = [
        f"Artist {i} {rng.choice(['Band', 'Trio', 'Collective', ''])}".strip()
        for i in range(n_artists)
    ]
    artist_weights = _zipf_weights(n_artists, 1.1)
    catalogue = []
    for i in range(n_tracks):
        artist = rng.choices(artists, cum_weights=artist_weights)[0]
        catalogue.append(
            (
                f"Song {i} of {artist.split()[1]}",
                artist,
                f"Album {i % 97} of {artist.split()[1]}",
                f"spotify:track:{_spotify_id(rng)}",
                rng.randint(90_000, 420_000),
            )
        )
    track_weights = _zipf_weights(n_tracks, 1.0)
    shows = [f"Show {i}" for i in range(20)]
    episodes = [
        (f"Episode {j} of {show}", show, f"spotify:episode:{_spotify_id(rng)}")
        for show in shows
        for j in range(50)
    ]

    when = datetime(2014, 1, 1, 8, tzinfo=UTC)
    # Spread the plays evenly up to a year ago, with gaps between them.
    span = (datetime(2025, 1, 1, tzinfo=UTC) - when).total_seconds()
    mean_gap = max(1.0, span / max(records, 1) - 200)

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal when
        picks: list[tuple[str, str, str, str, int]] = []
        for i in range(records):
            if i % RECORDS_PER_FILE == 0:  # drawn a file at a time
                count = min(RECORDS_PER_FILE, records - i)
                picks = rng.choices(catalogue, cum_weights=track_weights, k=count)
            name, artist, album, uri, duration = picks[i % RECORDS_PER_FILE]
            roll = rng.random()
            skipped = roll < 0.2
            ms = rng.randint(500, 29_000) if skipped else rng.randint(duration - 5000, duration)
            when += timedelta(seconds=ms // 1000 + rng.expovariate(1 / mean_gap))
            offline = roll > 0.93
            item: dict[str, Any] = {"track": name, "artist": artist, "album": album, "uri": uri}
            if 0.60 < roll < 0.65:  # a podcast episode
                episode, show, episode_uri = rng.choice(episodes)
                item = {"episode": episode, "show": show, "episode_uri": episode_uri}
                ms = rng.randint(60_000, 3_600_000)
            elif 0.70 < roll < 0.702:  # a row Spotify left without an item
                item = {"artist": artist, "album": album}
            yield extended_record(
                when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                ms_played=ms,
                **item,
                platform=PLATFORMS[int(roll * 1000) % len(PLATFORMS)],
                conn_country=COUNTRIES[int(roll * 10_000) % len(COUNTRIES)],
                ip_addr=f"203.0.113.{int(roll * 250)}",
                reason_start="fwdbtn" if roll < 0.3 else "trackdone",
                reason_end="fwdbtn" if skipped else "trackdone",
                shuffle=roll < 0.4,
                skipped=skipped,
                offline=offline,
                offline_timestamp=int(when.timestamp()) if offline else 0,
            )

    files = write_export(path, rows())
    written = records
    return {"records": written, "files": files, "tracks": n_tracks, "episodes": len(episodes)}
