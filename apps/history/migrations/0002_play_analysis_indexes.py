"""Indexes for the analysis queries.

On PostgreSQL the window scans read (user, played_at) with the track and ms_played carried in
the index (a covering index), so a window's plays come from an index-only scan. SQLite has no
INCLUDE; its (user, played_at) index from 0001 serves it.
"""

from django.db import migrations

CREATE = (
    "CREATE INDEX IF NOT EXISTS play_user_time_cover ON history_play "
    "(user_id, played_at) INCLUDE (track_id, ms_played, source)"
)
DROP = "DROP INDEX IF EXISTS play_user_time_cover"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("history", "0001_initial")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
