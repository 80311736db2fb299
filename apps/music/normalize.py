"""Name normalisation and local track ids: the one copy of these rules."""

import hashlib
import re
import unicodedata

_SPACE = re.compile(r"\s+")

LOCAL_PREFIX = "local:"
# The catalogue's name_key columns hold this many characters; decomposing can lengthen a name
# (one ligature becomes up to 18 characters), so keys are cut here, once for every use.
KEY_MAX = 512


def normalize_name(name: str | None) -> str:
    """Case-, accent- and spacing-insensitive form of a name: `Beyoncé ` -> `beyonce`."""
    if not name:
        return ""
    if not name.isascii():  # ASCII has no accents to strip: NFKD leaves it as it is
        decomposed = unicodedata.normalize("NFKD", name)
        name = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACE.sub(" ", name.casefold()).strip()[:KEY_MAX].rstrip()


def local_track_uri(artist: str | None, track: str | None, album: str | None = None) -> str:
    """The deterministic id of a track known only by names: `local:<sha1>`."""
    key = "|".join(normalize_name(part) for part in (artist, track, album))
    return LOCAL_PREFIX + hashlib.sha1(key.encode()).hexdigest()


def is_local_uri(uri: str) -> bool:
    return uri.startswith(LOCAL_PREFIX)
