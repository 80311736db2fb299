import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from apps.history.models import Play


@pytest.fixture
def plays(user, other_user, make_track, make_play):
    song = make_track("Paranoid Android", "Radiohead", "OK Computer", uri="spotify:track:pa")
    other = make_track("Karma Police", "Radiohead", "OK Computer", uri="spotify:track:kp")
    make_play(
        user,
        song,
        datetime(2025, 3, 14, 18, 23, 41, tzinfo=UTC),
        ms_played=214306,
        reason_end="trackdone",
        skipped=False,
        platform="android",
        conn_country="FR",
    )
    make_play(
        user,
        other,
        datetime(2024, 1, 2, 3, 4, 5, 306000, tzinfo=UTC),
        ms_played=None,
        source=Play.Source.API,
    )
    make_play(other_user, song, datetime(2025, 5, 5, 5, 5, 5, tzinfo=UTC))


def test_csv_export_streams_every_play_of_the_viewer_oldest_first(client, user, plays):
    client.force_login(user)
    response = client.get(reverse("export_plays", args=["csv"]))
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(
        'attachment; filename="listening-history-alice-'
    )
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["played_at"], r["track"], r["artist"], r["album"], r["uri"]) for r in rows] == [
        (
            "2024-01-02T03:04:05.306000Z",
            "Karma Police",
            "Radiohead",
            "OK Computer",
            "spotify:track:kp",
        ),
        (
            "2025-03-14T18:23:41Z",
            "Paranoid Android",
            "Radiohead",
            "OK Computer",
            "spotify:track:pa",
        ),
    ]
    assert rows[0]["ms_played"] == "" and rows[0]["source"] == "api"
    assert rows[1]["ms_played"] == "214306"
    assert (rows[1]["reason_end"], rows[1]["skipped"], rows[1]["platform"]) == (
        "trackdone",
        "false",
        "android",
    )


def test_jsonl_export_has_one_object_per_play(client, user, plays):
    client.force_login(user)
    response = client.get(reverse("export_plays", args=["jsonl"]))
    lines = b"".join(response.streaming_content).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["track"] for r in records] == ["Karma Police", "Paranoid Android"]
    assert records[1]["ms_played"] == 214306
    assert records[1]["skipped"] is False
    assert records[0]["ms_played"] is None
    assert records[1]["conn_country"] == "FR"


def test_another_users_plays_are_never_exported(client, other_user, plays):
    client.force_login(other_user)
    response = client.get(reverse("export_plays", args=["csv"]))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["played_at"] for r in rows] == ["2025-05-05T05:05:05Z"]


def test_an_unknown_format_is_404(client, user):
    client.force_login(user)
    assert client.get("/settings/export.xml").status_code == 404


def test_export_reads_in_chunks_so_memory_stays_flat(
    client, user, make_track, make_play, monkeypatch
):
    from apps.accounts import export

    track = make_track()
    for second in range(7):
        make_play(user, track, datetime(2025, 1, 1, 0, 0, second, tzinfo=UTC))
    monkeypatch.setattr(export, "CHUNK_SIZE", 3)
    client.force_login(user)
    lines = b"".join(client.get("/settings/export.jsonl").streaming_content).splitlines()
    assert len(lines) == 7
