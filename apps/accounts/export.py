"""Export of all of a user's plays, as CSV or JSON Lines, streamed row by row.

The rows come from a server-side cursor in chunks, so memory stays flat whatever the history's size.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from apps.accounts.models import User
from apps.history.models import Play

# Column name -> field path on Play.
COLUMNS: dict[str, str] = {
    "played_at": "played_at",
    "ms_played": "ms_played",
    "source": "source",
    "kind": "track__kind",
    "track": "track__name",
    "artist": "track__primary_artist__name",
    "album": "track__album__name",
    "uri": "track__uri",
    "reason_start": "reason_start",
    "reason_end": "reason_end",
    "skipped": "skipped",
    "shuffle": "shuffle",
    "offline": "offline",
    "platform": "platform",
    "conn_country": "conn_country",
    "ip_addr": "ip_addr",
    "user_agent": "user_agent",
    "export_username": "export_username",
}
CHUNK_SIZE = 2000
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def play_rows(*, user: User) -> Iterator[dict[str, Any]]:
    """Every play of the user, oldest first, as plain values (timestamps in UTC ISO 8601)."""
    rows = (
        Play.objects.for_user(user)
        .order_by("played_at", "id")
        .values_list(*COLUMNS.values())
        .iterator(chunk_size=CHUNK_SIZE)
    )
    names = list(COLUMNS)
    for row in rows:
        record = dict(zip(names, row, strict=True))
        record["played_at"] = record["played_at"].isoformat().replace("+00:00", "Z")
        yield record


class _Line:
    """A file-like object whose write() returns the line, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def export_lines(*, user: User, fmt: str) -> Iterator[str]:
    """The lines of the export file in `fmt` ("csv" or "jsonl")."""
    if fmt == "csv":
        writer = csv.writer(_Line())
        yield writer.writerow(list(COLUMNS))
        for record in play_rows(user=user):
            yield writer.writerow([_csv_value(v) for v in record.values()])
    elif fmt == "jsonl":
        for record in play_rows(user=user):
            yield json.dumps(record, ensure_ascii=False) + "\n"
    else:
        raise ValueError(f"Unknown export format {fmt!r}")
