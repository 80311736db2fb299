from datetime import timedelta

from django.conf import settings
from django.db import migrations

MINUTE = timedelta(minutes=1)


def fold_local_episodes(apps, schema_editor):
    """Fold each `local:` episode or chapter (an Account Data podcast row has no URI) into the
    real one of the same show and name, as imports now do (apps.music.services.TrackInfo.key).
    Before, they stayed apart, and a play in both kinds of export counted twice.

    A local play that is a play the real track holds (it ended within the local row's minute,
    or its second, give or take the dedup tolerance) goes; the real play keeps its second and details. Other
    local plays move to the real track. The plays' copies and the totals follow through the
    triggers on history_play."""
    Track = apps.get_model("music", "Track")
    Play = apps.get_model("history", "Play")
    tolerance = timedelta(seconds=settings.DEDUP_TOLERANCE_SECONDS)
    locals_ = Track.objects.filter(
        uri__startswith="local:", kind__in=("episode", "chapter"), album__isnull=False
    )
    for local in locals_.iterator():
        real = (
            Track.objects.filter(kind=local.kind, album_id=local.album_id, name_key=local.name_key)
            .exclude(uri__startswith="local:")
            .order_by("pk")
            .first()
        )
        if real is None:
            continue
        for play in Play.objects.filter(track_id=local.pk).order_by("pk"):
            # An Account Data row holds the minute the play ended in; others hold its second.
            reach = MINUTE if play.source == "export_account" else timedelta(0)
            same = Play.objects.filter(
                user_id=play.user_id,
                track_id=real.pk,
                played_at__gte=play.played_at - tolerance,
                played_at__lte=play.played_at + reach + tolerance,
            )
            if same.exists():
                play.delete()
            else:
                Play.objects.filter(pk=play.pk).update(track_id=real.pk)
        local.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("history", "0011_play_track_copies"),
        ("music", "0004_album_unique_on_sqlite"),
    ]

    operations = [
        migrations.RunPython(fold_local_episodes, migrations.RunPython.noop, elidable=True),
    ]
