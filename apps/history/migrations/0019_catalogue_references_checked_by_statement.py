"""On PostgreSQL, the catalogue's references (a track's album and primary artist, a credit's track
and artist, an album's artist) are checked by triggers a statement at a time, as the plays' are
since 0016 (apps.history.references), in place of their foreign keys' check of each row. SQLite
keeps its foreign keys, and the model state is unchanged: both databases guarantee the same.
A later migration that alters one of these fields makes its foreign key again, and must drop it.

A first import creates tens of thousands of tracks, each with its credits: their foreign keys
queued four checks a track for the batch's commit, about 6 % of the import (`bench imports`,
alternated).
"""

from django.db import migrations

from apps.history import references


def _foreign_keys(schema_editor):
    """The catalogue's foreign-key constraints: (table, name, definition)."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            [list(references.CATALOGUE_REFERENCES)],
        )
        return cursor.fetchall()


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, name, _ in _foreign_keys(schema_editor):
        schema_editor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for statement in references.install_sql(references.CATALOGUE_REFERENCES):
        schema_editor.execute(statement)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in references.uninstall_sql(references.CATALOGUE_REFERENCES):
        schema_editor.execute(statement)
    for statement in references.install_sql(references.PLAY_REFERENCES):
        schema_editor.execute(statement)
    for table, references_ in references.CATALOGUE_REFERENCES.items():
        for column, target in references_:
            schema_editor.execute(
                f"ALTER TABLE {table} ADD FOREIGN KEY ({column}) REFERENCES {target} (id) "
                "DEFERRABLE INITIALLY DEFERRED"
            )


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0018_play_unique_index_leads_with_track"),
        ("music", "0005_track_searched_at"),
    ]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
