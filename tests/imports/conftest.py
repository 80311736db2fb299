"""Small export ZIPs built in the test."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from apps.imports.demo import extended_record
from apps.music.services import TrackInfo


def extended(
    ts: Any,
    track: str | None = "Example Song",
    artist: str | None = "Example Artist",
    album: str | None = "Example Album",
    uri: str | None = "spotify:track:4uLU6hMCjMI75M1A2tKUQC",
    ms: Any = 214306,
    **fields: Any,
) -> dict[str, Any]:
    """One Extended streaming history record, as Spotify writes it."""
    fields = {"offline_timestamp": 1741976407, **fields}
    return extended_record(
        ts, ms_played=ms, track=track, artist=artist, album=album, uri=uri, **fields
    )


def example_song() -> TrackInfo:
    """The song `extended()` plays by default, as the API names it (a poll's play of it)."""
    return TrackInfo(
        name="Example Song",
        artist_name="Example Artist",
        album_name="Example Album",
        uri="spotify:track:4uLU6hMCjMI75M1A2tKUQC",
    )


def _not_music(ts: str, ms: int, **fields: Any) -> dict[str, Any]:
    """An Extended record with no song: an episode's or a chapter's fields instead."""
    return extended(ts, track=None, artist=None, album=None, uri=None, ms=ms, **fields)


def chapter(ts: str, title: str, book: str, ms: int) -> dict[str, Any]:
    """An audiobook chapter's record; its URI and the book's are made from the names."""
    return _not_music(
        ts,
        ms,
        audiobook_title=book,
        audiobook_uri=f"spotify:audiobook:{book[0]}",
        audiobook_chapter_title=title,
        audiobook_chapter_uri=f"spotify:chapter:{book[0]}{title[-1]}",
    )


def episode(ts: str, name: str, show: str, uri: str | None, ms: int = 1_200_000) -> dict[str, Any]:
    return _not_music(ts, ms, episode_name=name, episode_show_name=show, spotify_episode_uri=uri)


def account(end_time: str, track: str, artist: str, ms: int = 214306) -> dict[str, Any]:
    return {"endTime": end_time, "artistName": artist, "trackName": track, "msPlayed": ms}


def build_zip(files: dict[str, Any], **zip_kwargs: Any) -> bytes:
    """A ZIP of name -> records (JSON-encoded) or raw bytes/str."""
    buffer = io.BytesIO()
    zip_kwargs = {"compression": zipfile.ZIP_DEFLATED, **zip_kwargs}
    with zipfile.ZipFile(buffer, "w", **zip_kwargs) as archive:
        for name, content in files.items():
            if isinstance(content, bytes | str):
                archive.writestr(name, content)
            else:
                archive.writestr(name, json.dumps(content))
    return buffer.getvalue()


@pytest.fixture
def export_zip(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1_000_000))

    def make(files: dict[str, Any], name: str | None = None) -> Path:
        path = tmp_path / (name or f"my_spotify_data_{next(counter)}.zip")
        path.write_bytes(build_zip(files))
        return path

    return make
