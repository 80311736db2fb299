"""On PostgreSQL, the plays' user and track are checked by triggers a statement at a time, in
place of their foreign keys' check of each row (apps.history.references). SQLite keeps its
foreign keys, and the model state is unchanged: both databases guarantee the same.
"""

from django.db import migrations

# The constraints Django created (0001), dropped forwards and made again backwards.
FOREIGN_KEYS = {
    "history_play_track_id_f7874231_fk_music_track_id": "track_id REFERENCES music_track (id)",
    "history_play_user_id_061ae957_fk_accounts_user_id": "user_id REFERENCES accounts_user (id)",
}


def forward(apps, schema_editor):
    from apps.history import references

    if schema_editor.connection.vendor != "postgresql":
        return
    for name in FOREIGN_KEYS:
        schema_editor.execute(f"ALTER TABLE history_play DROP CONSTRAINT IF EXISTS {name}")
    for statement in references.install_sql(references.PLAY_REFERENCES):
        schema_editor.execute(statement)


def backward(apps, schema_editor):
    from apps.history import references

    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in references.uninstall_sql(references.PLAY_REFERENCES):
        schema_editor.execute(statement)
    for name, definition in FOREIGN_KEYS.items():
        column, target = definition.split(" REFERENCES ")
        schema_editor.execute(
            f"ALTER TABLE history_play ADD CONSTRAINT {name} FOREIGN KEY ({column}) "
            f"REFERENCES {target} DEFERRABLE INITIALLY DEFERRED"
        )


class Migration(migrations.Migration):
    dependencies = [("history", "0015_totals_without_foreign_key_constraints")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
