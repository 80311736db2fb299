"""The local tracks get an index of their own (track_local), and on PostgreSQL the pattern index
Django made for LIKE on Track.uri goes: `local:` was its only prefix looked up, and every new
track paid an entry in it."""

from django.db import migrations, models


def _like_index(schema_editor, apps):  # type: ignore[no-untyped-def]
    table = apps.get_model("music", "Track")._meta.db_table
    return schema_editor.quote_name(
        schema_editor._create_index_name(table, ["uri"], suffix="_like")
    ), table


def drop_like_index(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        name, _ = _like_index(schema_editor, apps)
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def add_like_index(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        name, table = _like_index(schema_editor, apps)
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} (uri varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [("music", "0005_track_searched_at")]

    operations = [
        migrations.AddIndex(
            model_name="track",
            index=models.Index(
                condition=models.Q(("uri__startswith", "local:")),
                fields=["id"],
                name="track_local",
            ),
        ),
        migrations.RunPython(drop_like_index, add_like_index, elidable=False),
    ]
