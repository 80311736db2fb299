"""`import_export` and `make_demo_export`."""

import json
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.history.models import JobRun, Play
from apps.imports.models import ImportJob
from tests.imports.conftest import extended

AUDIO = "Streaming_History_Audio_2025.json"


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_import_export_draws_a_progress_bar_on_a_terminal(user, export_zip, settings):
    settings.IMPORT_BATCH_SIZE = 2
    records = [extended(f"2025-03-14T18:{minute:02}:00Z") for minute in range(5)]
    out = Terminal()
    call_command("import_export", str(export_zip({AUDIO: records})), "--user", "alice", stdout=out)
    bars, summary = out.getvalue().rsplit("\n", 1)[0].split("\nImport #")
    drawn = bars.split("\r")[1:]
    assert drawn[-1] == f"[{'#' * 40}] 100.0%  5 records"
    # One redraw a batch of two, then once more when the job has finished.
    counts = [line.rsplit("  ", 1)[1] for line in drawn]
    assert counts == ["2 records", "4 records", "5 records", "5 records"]
    assert "plays added: 5" in summary and Play.objects.count() == 5


def test_import_export_prints_a_json_summary(user, export_zip):
    path = export_zip(
        {
            AUDIO: [
                extended("2025-03-14T18:23:41Z"),
                extended("2025-03-14T18:23:41Z"),
                extended("2025-03-15T09:00:00Z", ms="abc"),
            ]
        }
    )
    out = StringIO()
    call_command("import_export", str(path), "--user", "alice", "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert {k: summary[k] for k in ("records", "plays_added", "duplicates", "skipped")} == {
        "records": 3,
        "plays_added": 1,
        "duplicates": 1,
        "skipped": {"invalid_ms_played": 1},
    }
    assert (summary["earliest"], summary["latest"]) == (
        "2025-03-14T18:23:41+00:00",
        "2025-03-14T18:23:41+00:00",
    )
    assert summary["status"] == "succeeded" and summary["seconds"] > 0
    run = JobRun.objects.get()
    assert (run.type, run.status, run.counts["plays_added"]) == ("import_zip", "succeeded", 1)


def test_import_export_prints_a_readable_summary(user, export_zip):
    path = export_zip(
        {
            AUDIO: [
                extended("2025-03-14T18:23:41Z"),
                extended("2025-03-15T09:00:00Z", ms="abc"),
                extended("2025-03-16T09:00:00Z", ms=-5),
                extended("yesterday"),
            ],
            "Userdata.json": b"{}",
        }
    )
    out = StringIO()
    call_command("import_export", str(path), "--user", "alice", stdout=out)
    text = out.getvalue()
    assert "plays added: 1\n" in text
    assert (
        "skipped:     3 (2 with ms_played not a number, negative or over 24 hours; "
        "1 with timestamp missing or malformed)"
    ) in text
    assert "ignored:     1 other files" in text


def test_import_export_prints_a_readable_summary_and_fails_on_a_bad_zip(user, tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"nope")
    out = StringIO()
    with pytest.raises(CommandError, match="The file is not a ZIP archive"):
        call_command("import_export", str(bad), "--user", "alice", stdout=out)
    assert "error:       The file is not a ZIP archive" in out.getvalue()
    assert ImportJob.objects.get().status == "failed"


def test_import_export_refuses_while_another_import_of_the_user_runs(user, export_zip):
    running = ImportJob.objects.create(
        user=user,
        original_name="earlier.zip",
        status=ImportJob.Status.RUNNING,
        started_at=datetime(2025, 3, 14, tzinfo=UTC),
    )
    path = export_zip({AUDIO: [extended("2025-03-14T18:23:41Z")]})
    with pytest.raises(CommandError) as raised:
        call_command("import_export", str(path), "--user", "alice", stdout=StringIO())
    assert str(raised.value) == (
        "Another import of alice is running or waiting to resume. "
        "Nothing was imported; run this again after it."
    )
    # No job is left behind for a worker to run later, and no play was added.
    assert list(ImportJob.objects.values_list("pk", flat=True)) == [running.pk]
    assert not Play.objects.exists()


def test_import_export_names_an_unknown_user(db, tmp_path):
    with pytest.raises(CommandError, match=r"No user named 'zed'\."):
        call_command("import_export", str(tmp_path / "x.zip"), "--user", "zed")


def test_make_demo_export_writes_a_realistic_export_that_imports(user, tmp_path):
    path = tmp_path / "demo.zip"
    out = StringIO()
    call_command("make_demo_export", str(path), "--records", "16000", "--seed", "4", stdout=out)
    assert out.getvalue().startswith(f"Wrote {path}: 16,000 records in 2 files")
    call_command("import_export", str(path), "--user", "alice", "--json", stdout=StringIO())
    job = ImportJob.objects.get()
    assert job.records_seen == 16_000
    assert job.plays_added + job.skipped_total == 16_000
    kinds = set(Play.objects.values_list("track__kind", flat=True))
    assert kinds == {"music", "episode"}
    assert Play.objects.filter(skipped=True).count() > 2000


def _estimated_plays(user_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (FORMAT JSON) SELECT id FROM history_play WHERE user_id = %s", [user_id]
        )
        plan = cursor.fetchone()[0]
    return int((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]["Plan Rows"])


def test_an_import_brings_the_planners_statistics_up_to_date(
    postgres, user, other_user, make_track, make_play, export_zip
):
    """After an import the planner knows the user's plays (and the totals): without it, a user
    whose plays the statistics hold none of gets plans for a handful of plays."""
    song = make_track("Other Song", "Other Artist")
    for hour in range(30):
        make_play(other_user, song, datetime(2025, 1, 1, hour % 24, hour, tzinfo=UTC))
    records = [
        extended(f"2025-03-{day:02}T18:{minute:02}:00Z")
        for day in range(1, 29)
        for minute in range(0, 60, 3)
    ]
    call_command(
        "import_export", str(export_zip({AUDIO: records})), "--user", "alice", stdout=StringIO()
    )
    assert Play.objects.filter(user=user).count() == 560
    assert _estimated_plays(user.pk) == 560
    assert _estimated_plays(other_user.pk) == 30
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stats WHERE tablename = 'history_tracktotal' "
            "AND attname = 'user_id'"
        )
        assert cursor.fetchone() == (1,)
