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
from datetime import UTC, datetime, timedelta
from itertools import accumulate
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
    files = 0
    written = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(f"{FOLDER}/ReadMeFirst_ExtendedStreamingHistory.pdf", b"%PDF-1.4 demo")
        while written < records:
            count = min(RECORDS_PER_FILE, records - written)
            picks = rng.choices(catalogue, cum_weights=track_weights, k=count)
            rows = []
            for pick in picks:
                roll = rng.random()
                skipped = roll < 0.2
                name, artist, album, uri, duration = pick
                ms = rng.randint(500, 29_000) if skipped else rng.randint(duration - 5000, duration)
                when += timedelta(seconds=ms // 1000 + rng.expovariate(1 / mean_gap))
                offline = roll > 0.93
                row: dict[str, Any] = {
                    "ts": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "platform": PLATFORMS[int(roll * 1000) % len(PLATFORMS)],
                    "ms_played": ms,
                    "conn_country": COUNTRIES[int(roll * 10_000) % len(COUNTRIES)],
                    "ip_addr": f"203.0.113.{int(roll * 250)}",
                    "master_metadata_track_name": name,
                    "master_metadata_album_artist_name": artist,
                    "master_metadata_album_album_name": album,
                    "spotify_track_uri": uri,
                    "episode_name": None,
                    "episode_show_name": None,
                    "spotify_episode_uri": None,
                    "audiobook_title": None,
                    "audiobook_uri": None,
                    "audiobook_chapter_uri": None,
                    "audiobook_chapter_title": None,
                    "reason_start": "fwdbtn" if roll < 0.3 else "trackdone",
                    "reason_end": "fwdbtn" if skipped else "trackdone",
                    "shuffle": roll < 0.4,
                    "skipped": skipped,
                    "offline": offline,
                    "offline_timestamp": int(when.timestamp()) if offline else 0,
                    "incognito_mode": False,
                }
                if 0.60 < roll < 0.65:  # a podcast episode
                    episode, show, episode_uri = rng.choice(episodes)
                    row.update(
                        master_metadata_track_name=None,
                        master_metadata_album_artist_name=None,
                        master_metadata_album_album_name=None,
                        spotify_track_uri=None,
                        episode_name=episode,
                        episode_show_name=show,
                        spotify_episode_uri=episode_uri,
                        ms_played=rng.randint(60_000, 3_600_000),
                    )
                elif 0.70 < roll < 0.702:  # a row Spotify left without an item
                    row.update(master_metadata_track_name=None, spotify_track_uri=None)
                rows.append(row)
            first, last = rows[0]["ts"][:4], rows[-1]["ts"][:4]
            archive.writestr(
                f"{FOLDER}/Streaming_History_Audio_{first}-{last}_{files}.json",
                json.dumps(rows, indent=1),
            )
            files += 1
            written += count
        archive.writestr("Spotify Account Data/Userdata.json", json.dumps({"username": "demo"}))
    return {"records": written, "files": files, "tracks": n_tracks, "episodes": len(episodes)}
