from django.db import migrations


def leave_room(apps, schema_editor):
    # Every import batch and poll updates the rows of the tracks it played. Room left on each
    # page lets PostgreSQL update a row in place (a HOT update) instead of writing an entry in
    # each of the table's indexes.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE history_tracktotal SET (fillfactor = 70)")


def fill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE history_tracktotal RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("history", "0008_tracktotal_copies_daytotal")]

    operations = [migrations.RunPython(leave_room, fill)]
