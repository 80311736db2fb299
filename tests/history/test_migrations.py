"""Data migrations that put stored plays right, run on data in the state they fix."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

from django.apps import apps
from django.db import connection

from apps.history.models import Play
from apps.music.models import Album, Source, Track
from apps.music.normalize import local_track_uri
from tests.history.test_totals import assert_exact


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_local_episodes_fold_into_the_real_ones_of_the_same_show_and_name(
    user: Any, other_user: Any
) -> None:
    """The state imports left before: an Account Data podcast row stayed on a local episode
    beside the real episode an Extended export brought, and counted twice."""
    show = Album.objects.create(name="Show 6", name_key="show 6")
    other_show = Album.objects.create(name="Show 7", name_key="show 7")

    def episode(uri: str, album: Album) -> Track:
        return Track.objects.create(
            uri=uri, kind="episode", name="Episode 29", name_key="episode 29", album=album
        )

    real = episode("spotify:episode:hpoO", show)
    local = episode(local_track_uri(None, "Episode 29", "Show 6"), show)
    alone = episode(local_track_uri(None, "Episode 29", "Show 7"), other_show)

    def play(track: Track, when: str, source: str, person: Any = user) -> None:
        Play.objects.create(
            user=person, track=track, played_at=at(when), source=source, ms_played=1_200_000
        )

    play(real, "2024-05-01T16:37:04", Source.EXPORT_EXTENDED)
    play(local, "2024-05-01T16:37:00", Source.EXPORT_ACCOUNT)  # the same play
    play(local, "2024-05-02T08:00:00", Source.EXPORT_ACCOUNT)  # heard again
    play(local, "2024-05-01T16:37:00", Source.EXPORT_ACCOUNT, other_user)  # bob's own play
    play(alone, "2024-05-03T09:00:00", Source.EXPORT_ACCOUNT)  # no real twin: stays

    migration = importlib.import_module("apps.history.migrations.0012_fold_local_episodes")
    migration.fold_local_episodes(apps, None)

    assert sorted(
        Play.objects.values_list("user__username", "track__uri", "played_at", "source")
    ) == [
        ("alice", alone.uri, at("2024-05-03T09:00:00"), "export_account"),
        ("alice", real.uri, at("2024-05-01T16:37:04"), "export_extended"),
        ("alice", real.uri, at("2024-05-02T08:00:00"), "export_account"),
        ("bob", real.uri, at("2024-05-01T16:37:00"), "export_account"),
    ]
    assert not Track.objects.filter(pk=local.pk).exists()
    assert Play.objects.filter(track=real).values_list("album_id", flat=True).distinct().get() == (
        show.pk
    )
    if connection.vendor == "postgresql":
        assert_exact()
