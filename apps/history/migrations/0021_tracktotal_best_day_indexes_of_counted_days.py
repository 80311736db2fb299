"""Only counted best days are in TrackTotal's best-day indexes: a row an import adds (stale,
counted later) costs neither an entry. The totals' triggers are installed again: the hour sums
find each play's UTC hour without looking the zone up once a row. What they keep is unchanged.
"""

from django.db import migrations, models


def reinstall_triggers(apps, schema_editor):
    from apps.history import totals

    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in totals.reinstall_sql():
        schema_editor.execute(statement)


def best_day_index(counted: str) -> models.Index:
    return models.Index(
        condition=models.Q((f"best_day_{counted}__gt", 0)),
        fields=["user", f"-best_day_{counted}", f"-best_day_{counted}_on"],
        name=f"tracktotal_best_day_{counted}",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0020_totals_and_references_read_rows_once"),
        ("music", "0006_track_local_index"),
    ]

    operations = [
        *(
            operation
            for counted in ("listens", "plays")
            for operation in (
                migrations.RemoveIndex(
                    model_name="tracktotal", name=f"tracktotal_best_day_{counted}"
                ),
                migrations.AddIndex(model_name="tracktotal", index=best_day_index(counted)),
            )
        ),
        migrations.RunPython(reinstall_triggers, migrations.RunPython.noop, elidable=False),
    ]
