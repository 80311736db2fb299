"""Two indexes of history_play that only cost writes:

- the user_id index of the foreign key: the unique (user, track, played_at) index and the
  (user, played_at) index serve every lookup by user;
- the plain (user, played_at) index on PostgreSQL, where the covering one from 0002 has the same
  keys. SQLite has no INCLUDE: there the plain index stays, under the covering index's name, so
  both databases keep one (user, played_at) index called play_user_time_cover.

Each insert maintained both; imports write every play once, so this is most of their index cost
after the unique index.
"""

from django.conf import settings
from django.db import migrations, models

USER_INDEX = "history_play_user_id_061ae957"


def forward(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX IF EXISTS {USER_INDEX}")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS play_user_time_cover ON history_play (user_id, played_at)"
        )
    schema_editor.execute("DROP INDEX IF EXISTS play_user_played_at")


def backward(apps, schema_editor):
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS play_user_played_at ON history_play (user_id, played_at)"
    )
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS play_user_time_cover")
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {USER_INDEX} ON history_play (user_id)")


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0004_first_listen_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="play", name="play_user_played_at"),
                migrations.AlterField(
                    model_name="play",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=models.deletion.CASCADE,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
        )
    ]
