"""Reading Spotify export ZIPs: format detection, archive checks and streaming record parsing.

Nothing is ever extracted to disk: members are read straight from the archive with ijson's C
backend, one record at a time, so memory stays flat whatever the export's size. Each record is
normalised to one `PlayRecord` (see `apps.history.ingest`), or skipped with a reason.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import IO, Any

import ijson
from django.conf import settings

from apps.history.ingest import PlayRecord
from apps.music.models import Source, Track
from apps.music.services import TrackInfo


class ExportError(Exception):
    """The export can't be imported; the message says why, for the user."""


# --- Formats ----------------------------------------------------------------------------------

EXTENDED = "extended"
ACCOUNT_MUSIC = "account_music"
ACCOUNT_PODCAST = "account_podcast"

FORMAT_LABELS = {
    EXTENDED: "Extended streaming history",
    ACCOUNT_MUSIC: "Account data (music)",
    ACCOUNT_PODCAST: "Account data (podcasts)",
}
SOURCE_OF = {
    EXTENDED: Source.EXPORT_EXTENDED,
    ACCOUNT_MUSIC: Source.EXPORT_ACCOUNT,
    ACCOUNT_PODCAST: Source.EXPORT_ACCOUNT,
}

_FORMATS = [
    (re.compile(r"Streaming_History_(Audio|Video)_.*\.json", re.IGNORECASE), EXTENDED),
    (re.compile(r"endsong(_\d+)?\.json", re.IGNORECASE), EXTENDED),
    (re.compile(r"StreamingHistory_music_\d+\.json", re.IGNORECASE), ACCOUNT_MUSIC),
    (re.compile(r"StreamingHistory\d+\.json", re.IGNORECASE), ACCOUNT_MUSIC),
    (re.compile(r"StreamingHistory_podcast_\d+\.json", re.IGNORECASE), ACCOUNT_PODCAST),
]
_ARCHIVE_SUFFIXES = (".zip", ".gz", ".tgz", ".tar", ".7z", ".rar", ".bz2", ".xz", ".jar")
_ZIP_MAGIC = b"PK\x03\x04"


def detect_format(name: str) -> str | None:
    """The export format of a ZIP member, by its basename wherever it sits; None for others."""
    basename = name.replace("\\", "/").rsplit("/", 1)[-1]
    for pattern, fmt in _FORMATS:
        if pattern.fullmatch(basename):
            return fmt
    return None


@dataclass
class Member:
    name: str
    format: str
    size: int


@dataclass
class ExportContents:
    members: list[Member]
    ignored: list[str]

    @property
    def formats(self) -> list[str]:
        return sorted({m.format for m in self.members})

    @property
    def total_bytes(self) -> int:
        return sum(m.size for m in self.members)


# --- Archive checks ---------------------------------------------------------------------------


def _unsafe_path(name: str) -> bool:
    path = name.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return True
    return any(part == ".." for part in path.split("/"))


def inspect_archive(archive: zipfile.ZipFile) -> ExportContents:
    """Check every member of the archive and list the Spotify files; raise ExportError if unsafe.

    The checks read only the central directory: zip slip, symlinks, encryption, nested archives,
    and the zip-bomb caps on total uncompressed size and compression ratio.
    """
    max_total = settings.IMPORT_MAX_UNCOMPRESSED_MB * 1024 * 1024
    max_ratio = settings.IMPORT_MAX_COMPRESSION_RATIO
    members: list[Member] = []
    ignored: list[str] = []
    total = 0
    for info in archive.infolist():
        name = info.filename
        if _unsafe_path(name):
            raise ExportError(
                f"The ZIP contains a file whose path leaves the archive ({name!r}); it was refused."
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ExportError(f"The ZIP contains a symbolic link ({name!r}); it was refused.")
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise ExportError(
                f"The ZIP contains an encrypted file ({name!r}). Spotify's exports are not "
                "encrypted; upload the ZIP exactly as Spotify sent it."
            )
        if name.lower().endswith(_ARCHIVE_SUFFIXES):
            raise ExportError(
                f"The ZIP contains another archive ({name!r}). Upload the ZIP Spotify sent "
                "you, not an archive of archives."
            )
        total += info.file_size
        if total > max_total:
            raise ExportError(
                "The ZIP would unpack to more than "
                f"{settings.IMPORT_MAX_UNCOMPRESSED_MB} MB; it was refused as a possible "
                "zip bomb."
            )
        if info.file_size > 1024 * 1024 and info.file_size > max_ratio * max(info.compress_size, 1):
            raise ExportError(
                f"{name!r} is compressed more than {max_ratio} to 1; the ZIP was refused as a "
                "possible zip bomb."
            )
        fmt = detect_format(name)
        if fmt is None:
            ignored.append(name)
        else:
            members.append(Member(name=name, format=fmt, size=info.file_size))
    if not members:
        raise ExportError(
            "This ZIP holds no Spotify listening history: expected files such as "
            "Streaming_History_Audio_2024.json (Extended streaming history) or "
            "StreamingHistory_music_0.json (Account data)."
        )
    # Account data last: its minute-precise rows then match the exact plays already stored.
    # Within a format, in the order Spotify numbers the files, which is time order.
    order = {EXTENDED: 0, ACCOUNT_MUSIC: 1, ACCOUNT_PODCAST: 2}
    members.sort(key=lambda m: (order[m.format], _numbered(m.name)))
    return ExportContents(members=members, ignored=sorted(ignored))


def _numbered(name: str) -> list[str | int]:
    """A file name as it sorts with its numbers read as numbers: Spotify numbers an export's
    files `_0` to `_N`, and by their text `_10` would come before `_9`, out of time order (a
    batch then met the plays stored after it, and matched against them)."""
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(name)]


_DIGITS = re.compile(r"(\d+)")


def open_archive(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ExportError(
            "The file is not a ZIP archive (or it is damaged or incomplete). Upload the "
            "my_spotify_data.zip file Spotify sent you."
        ) from None
    except OSError as exc:
        raise ExportError(f"The file could not be read: {exc.strerror or exc}.") from None


# --- Records ----------------------------------------------------------------------------------

# Record-level faults: the record is skipped and counted under its reason, one of the codes of
# `apps.imports.models.SKIP_REASONS`.

EARLIEST = datetime(2006, 1, 1, tzinfo=UTC)  # Spotify was founded in 2006.
MAX_MS_PLAYED = 24 * 3600 * 1000
MAX_NAME = 512


class SkipRecord(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _text(value: Any, limit: int | None = None) -> str:
    """A string field; None and empty give ''. NUL characters are removed (PostgreSQL refuses
    them); a name over MAX_NAME characters skips the record."""
    if value is None:
        return ""
    if type(value) is not str:
        raise SkipRecord("invalid_field")
    if "\x00" in value:
        value = value.replace("\x00", "")
    if limit is None:
        if len(value) > MAX_NAME:
            raise SkipRecord("name_too_long")
        return value.strip()
    return value[:limit]


def _optional_text(value: Any) -> str | None:
    return _text(value) or None


# An item's Spotify URI: spotify:<type>:<base-62 id>, at most 128 characters (the catalogue's).
_URI = re.compile(r"spotify:[a-z]{1,19}:[0-9A-Za-z]{1,100}")


def _uri(value: Any) -> str | None:
    """An item's URI, or None for anything else (a `spotify:local:` file's URI with its names,
    a damaged or overlong value): the record then resolves by its names, as one without a URI."""
    if value is None:
        return None
    if type(value) is not str:
        raise SkipRecord("invalid_field")
    return value if _URI.fullmatch(value) else None


def _ms(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is bool or not isinstance(value, int | float):
        raise SkipRecord("invalid_ms_played")
    if isinstance(value, float) and not math.isfinite(value):
        raise SkipRecord("invalid_ms_played")
    if value < 0 or value > MAX_MS_PLAYED:
        raise SkipRecord("invalid_ms_played")
    return int(value)


_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_END_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")


def _when(value: Any, pattern: re.Pattern[str], latest: datetime) -> datetime:
    if type(value) is not str or not pattern.fullmatch(value):
        raise SkipRecord("invalid_timestamp")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise SkipRecord("invalid_timestamp") from None
    if when.tzinfo is None:  # Account Data's endTime: UTC without a suffix
        when = when.replace(tzinfo=UTC)
    if when < EARLIEST or when > latest:
        raise SkipRecord("date_out_of_range")
    return when


def _ip(value: Any) -> str | None:
    if type(value) is not str:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


# Read once: an enum attribute costs a lookup per record.
_EXTENDED = Source.EXPORT_EXTENDED
_MUSIC, _EPISODE, _CHAPTER = Track.Kind.MUSIC, Track.Kind.EPISODE, Track.Kind.CHAPTER


# Each of the Normaliser's caches is emptied when it reaches this many entries: memory stays
# flat whatever the export's size.
SHARED_MAX = 50_000


@dataclass
class Normaliser:
    """Turns raw export records into PlayRecords; one per import, it holds the settings.

    The records of one item share one TrackInfo, and repeated values (platforms, reasons) one
    string: a batch in memory then holds each name once instead of once a play, which keeps an
    import's memory low with large batches.

    Most records of an export repeat a song and details seen before. `songs` and `details` map
    their raw values to what those normalise to, so a repeat is checked once: only strings and
    None (JSON's) are ever kept as keys, and no other JSON value equals one of those."""

    keep_sensitive: bool = field(default_factory=lambda: settings.IMPORT_KEEP_SENSITIVE)
    latest: datetime = field(default_factory=lambda: datetime.now(UTC) + timedelta(days=1))
    items: dict[tuple[str, str, str | None, str | None, str | None], TrackInfo] = field(
        default_factory=dict
    )
    strings: dict[str, str] = field(default_factory=dict)
    # (track name, album artist, album, track URI) as an Extended record gives them -> the
    # song (`items` holds the other items).
    songs: dict[tuple[Any, Any, Any, Any], TrackInfo] = field(default_factory=dict)
    # (reason_start, reason_end, platform, conn_country) as given -> the values kept.
    details: dict[tuple[Any, Any, Any, Any], tuple[str, str, str, str]] = field(
        default_factory=dict
    )

    def _item(self, kind: str, name: str, owner: Any, album: Any, uri: str | None) -> TrackInfo:
        """The TrackInfo of an item, the same object for each of its records. `owner` is the
        artist of a song; episodes and chapters have none."""
        artist_name = _optional_text(owner)
        album_name = _optional_text(album)
        key = (kind, name, artist_name, album_name, uri)
        info = self.items.get(key)
        if info is None:
            if len(self.items) >= SHARED_MAX:
                self.items.clear()
            info = self.items[key] = TrackInfo(name, artist_name, album_name, uri, kind)
        return info

    def _shared(self, value: str) -> str:
        strings = self.strings
        shared = strings.get(value)
        if shared is None:
            if len(strings) >= SHARED_MAX:
                strings.clear()
            shared = strings[value] = value
        return shared

    def _extended_item(self, raw: dict[str, Any], song: tuple[Any, Any, Any, Any]) -> TrackInfo:
        """The item of an Extended record that is not a known song: checked field by field."""
        get = raw.get
        track_name = _text(song[0])
        track_uri = _uri(song[3])
        if track_name or track_uri:
            # Kept in `songs` alone: its raw key already holds the names.
            info = TrackInfo(
                track_name, _optional_text(song[1]), _optional_text(song[2]), track_uri, _MUSIC
            )
            _remember(self.songs, song, info)
            return info
        episode_name = _text(get("episode_name"))
        episode_uri = _uri(get("spotify_episode_uri"))
        if episode_name or episode_uri:
            return self._item(_EPISODE, episode_name, None, get("episode_show_name"), episode_uri)
        chapter_name = _text(get("audiobook_chapter_title"))
        chapter_uri = _uri(get("audiobook_chapter_uri"))
        if not (chapter_name or chapter_uri):
            raise SkipRecord("no_item")
        return self._item(_CHAPTER, chapter_name, None, get("audiobook_title"), chapter_uri)

    def _new_details(self, given: tuple[Any, Any, Any, Any]) -> tuple[str, str, str, str]:
        shared = self._shared
        details = (
            shared(_text(given[0], 32)),  # reason_start
            shared(_text(given[1], 32)),  # reason_end
            shared(_text(given[2], 128)),  # platform
            shared(_country(given[3])),  # conn_country
        )
        _remember(self.details, given, details)
        return details

    def extended(self, raw: dict[str, Any]) -> PlayRecord:
        # The hot loop of an import: one lookup of the fields, local names, positional
        # arguments and the lookups of repeated values by their raw form (see the class) save
        # most of its time.
        try:
            fields = _EXTENDED_FIELDS(raw)
        except KeyError:  # a field is missing: read as null
            fields = tuple(map(raw.get, _EXTENDED_KEYS))
        (
            ts,
            ms,
            name,
            artist,
            album,
            uri,
            start,
            end,
            platform,
            country,
            skipped,
            shuffle,
            offline,
        ) = fields
        played_at = _when(ts, _TS, self.latest)
        ms_played = ms if type(ms) is int and 0 <= ms <= MAX_MS_PLAYED else _ms(ms)
        song = (name, artist, album, uri)
        info = _known(self.songs, song)
        if info is None:
            info = self._extended_item(raw, song)
        given = (start, end, platform, country)
        details = _known(self.details, given)
        if details is None:
            details = self._new_details(given)
        if (
            (skipped is not None and type(skipped) is not bool)
            or (shuffle is not None and type(shuffle) is not bool)
            or (offline is not None and type(offline) is not bool)
        ):
            raise SkipRecord("invalid_field")
        reason_start, reason_end, platform, conn_country = details
        record = PlayRecord(
            info,
            played_at,
            _EXTENDED,
            ms_played,
            reason_start,
            reason_end,
            skipped,
            shuffle,
            offline,
            platform,
            conn_country,
        )
        # offline_timestamp (seconds, milliseconds, 0 or null) is read but not stored: `ts`
        # is the end of the play whatever the mode.
        if self.keep_sensitive:
            get = raw.get
            record.ip_addr = _ip(get("ip_addr", get("ip_addr_decrypted")))
            record.user_agent = _text(get("user_agent_decrypted"), 256)
            record.export_username = _text(get("username"), 128)
        return record

    def account_music(self, raw: dict[str, Any]) -> PlayRecord:
        played_at = _when(raw.get("endTime"), _END_TIME, self.latest)
        ms_played = _ms(raw.get("msPlayed"))
        name = _text(raw.get("trackName"))
        if not name:
            raise SkipRecord("no_item")
        info = self._item(_MUSIC, name, raw.get("artistName"), None, None)
        return PlayRecord(
            track=info, played_at=played_at, source=Source.EXPORT_ACCOUNT, ms_played=ms_played
        )

    def account_podcast(self, raw: dict[str, Any]) -> PlayRecord:
        played_at = _when(raw.get("endTime"), _END_TIME, self.latest)
        ms_played = _ms(raw.get("msPlayed"))
        name = _text(raw.get("episodeName"))
        if not name:
            raise SkipRecord("no_item")
        info = self._item(_EPISODE, name, None, raw.get("podcastName"), None)
        return PlayRecord(
            track=info, played_at=played_at, source=Source.EXPORT_ACCOUNT, ms_played=ms_played
        )

    def function_for(self, fmt: str) -> Any:
        return {
            EXTENDED: self.extended,
            ACCOUNT_MUSIC: self.account_music,
            ACCOUNT_PODCAST: self.account_podcast,
        }[fmt]


# The fields of an Extended record the normaliser reads: the time, ms_played, the song (as
# Normaliser.songs keys it), the details (as Normaliser.details keys them) and the flags.
_EXTENDED_KEYS = (
    "ts",
    "ms_played",
    "master_metadata_track_name",
    "master_metadata_album_artist_name",
    "master_metadata_album_album_name",
    "spotify_track_uri",
    "reason_start",
    "reason_end",
    "platform",
    "conn_country",
    "skipped",
    "shuffle",
    "offline",
)
_EXTENDED_FIELDS = itemgetter(*_EXTENDED_KEYS)


def _known(cache: dict[Any, Any], given: tuple[Any, ...]) -> Any:
    """What `given` (raw values) normalised to before, or None. A list or object among them
    can't be a key: it is checked, and refused, the long way."""
    try:
        return cache.get(given)
    except TypeError:
        return None


def _remember(cache: dict[Any, Any], given: tuple[Any, ...], value: Any) -> None:
    """Keep what `given` normalised to; not when a list or object is among them (a country
    that is one is read as none)."""
    if len(cache) >= SHARED_MAX:
        cache.clear()
    with contextlib.suppress(TypeError):
        cache[given] = value


def _country(value: Any) -> str:
    """A two-letter country code, or '' for anything else."""
    if type(value) is str and len(value) == 2 and value.isascii() and value.isalpha():
        return value
    return ""


class CountingReader:
    """A file wrapper that counts the bytes read, for the progress bar, and notes the end."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.bytes_read = 0
        self.at_end = False

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.bytes_read += len(data)
        if not data and size != 0:
            self.at_end = True
        return data


_BOM = b"\xef\xbb\xbf"


def iter_member(
    archive: zipfile.ZipFile, member: Member, reader_box: list[CountingReader]
) -> Iterator[Any]:
    """The raw items of one member, streamed; raise ExportError when it isn't a JSON array of
    objects, isn't valid JSON or is damaged in the ZIP. `reader_box` receives the byte-counting
    reader."""
    try:
        yield from _items(archive, member, reader_box)
    except (zipfile.BadZipFile, zlib.error) as exc:
        raise ExportError(f"{member.name} is damaged in the ZIP: {_short(exc)}.") from None


def _items(
    archive: zipfile.ZipFile, member: Member, reader_box: list[CountingReader]
) -> Iterator[Any]:
    with archive.open(member.name) as raw:
        head = raw.read(len(_BOM))
        if head != _BOM:
            # Not a BOM: put the bytes back in front of the stream.
            raw = _Prefixed(head, raw)  # type: ignore[assignment]
        reader = CountingReader(raw)
        reader_box[:] = [reader]
        first = _first_char(reader)
        if first is None:
            raise ExportError(f"{member.name} is empty: it should hold a JSON array of plays.")
        if first != b"[":
            raise ExportError(
                f"{member.name} is not a JSON array of plays: it starts with "
                f"{first.decode(errors='replace')!r}."
            )
        stream = _Prefixed(first, reader)
        position = 0
        try:
            for item in ijson.items(stream, "item", use_float=True):
                position += 1
                if type(item) is not dict:
                    raise ExportError(
                        f"{member.name}: item {position} is not a JSON object; expected an "
                        "array of play records."
                    )
                yield item
        except ijson.JSONError as exc:
            detail = _short(exc)
            # An error met once the file had no more bytes: it ended inside a value.
            if reader.at_end or "premature EOF" in detail:
                raise ExportError(
                    f"{member.name} is truncated: its JSON ends after {position:,} records. "
                    "Download the export again."
                ) from None
            raise ExportError(
                f"{member.name} is not valid JSON (after {position:,} records): {detail}"
            ) from None
        except UnicodeDecodeError as exc:
            # An escaped half of a surrogate pair: the parser cannot go on past it. (Bytes
            # that are not UTF-8 are a JSONError, above.)
            raise ExportError(
                f"{member.name} holds text that is not valid Unicode (after {position:,} "
                f"records): {_short(exc)}. Download the export again."
            ) from None


def _short(exc: Exception) -> str:
    """The first line of an error's message (the JSON parser gives some as bytes), and the word
    the JSON parser stopped at, when it shows the line: `NaN`, say."""
    message = exc.args[0] if exc.args else None
    text = message.decode(errors="replace") if isinstance(message, bytes) else str(exc)
    lines = text.strip("\n").splitlines()
    first = (lines[0].strip() if lines else "") or type(exc).__name__
    # The parser's picture: the line of JSON, then "(right here) ------^" under where it
    # stopped. Only a bare word is shown (a string is never where it stops), so no value of
    # the record (an IP address) is repeated in the message.
    if len(lines) >= 3 and lines[2].endswith("^"):
        line = lines[1]
        start = min(len(lines[2]) - 1, len(line))
        while start > 0 and _WORD_CHAR.match(line[start - 1]):  # back to the word's start
            start -= 1
        word = _BARE_WORD.match(line, start)
        if word:
            return f"{first.rstrip('.')}: {word.group()}"[:200]
    return first[:200]


_WORD_CHAR = re.compile(r"[\w\-]")
_BARE_WORD = re.compile(r"-?[A-Za-z_]\w{0,19}")


def _first_char(reader: CountingReader) -> bytes | None:
    while True:
        chunk = reader.read(1)
        if not chunk:
            return None
        if not chunk.isspace():
            return chunk


class _Prefixed:
    """A stream that yields some already-read bytes before the rest."""

    def __init__(self, prefix: bytes, rest: Any) -> None:
        self.prefix = prefix
        self.rest = rest

    def read(self, size: int = -1) -> bytes:
        if self.prefix:
            if size is None or size < 0:
                data, self.prefix = self.prefix + self.rest.read(), b""
                return data
            data, self.prefix = self.prefix[:size], self.prefix[size:]
            if len(data) < size:
                data += self.rest.read(size - len(data))
            return data
        return self.rest.read(size)
