"""The totals' and the references' trigger functions installed again (PostgreSQL): the day,
month and year totals now read a statement's rows once between them
(apps.history.totals._zoned), and each reference check gathers its distinct references once
(apps.history.references). What they keep and check is unchanged, so nothing is counted again.
"""

from django.db import migrations


def forward(apps, schema_editor):
    from apps.history import references, totals

    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in [*references.install_sql(), *totals.reinstall_sql()]:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("history", "0019_catalogue_references_checked_by_statement")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop, elidable=False)]
