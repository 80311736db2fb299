"""The data model's own guarantees: one play one row, and per-user reads."""

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction

from apps.history.models import Play

WHEN = datetime(2025, 3, 14, 18, 23, 41, tzinfo=UTC)


def test_a_duplicate_play_is_refused_by_the_database(user, make_track, make_play):
    track = make_track()
    make_play(user, track, WHEN)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_play(user, track, WHEN)
    assert Play.objects.count() == 1


def test_the_same_play_for_two_users_is_two_rows(user, other_user, make_track, make_play):
    track = make_track()
    make_play(user, track, WHEN)
    make_play(other_user, track, WHEN)
    assert Play.objects.count() == 2


def test_each_user_reads_only_their_own_plays(user, other_user, make_track, make_play):
    track = make_track()
    mine = make_play(user, track, WHEN)
    make_play(other_user, track, WHEN)
    make_play(other_user, make_track("Other"), WHEN)
    assert list(Play.objects.for_user(user)) == [mine]
    assert Play.objects.for_user(other_user).count() == 2


def test_a_user_timezone_must_be_an_iana_zone(user):
    from django.core.exceptions import ValidationError

    user.timezone = "Mars/Olympus"
    with pytest.raises(ValidationError, match="is not an IANA time zone"):
        user.full_clean()
    user.timezone = "America/Los_Angeles"
    user.full_clean()
    assert str(user.tzinfo) == "America/Los_Angeles"


def play_indexes() -> dict[str, tuple[list[str], bool]]:
    """Each index of history_play: its columns, and whether it is unique (primary key aside)."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, Play._meta.db_table)
    return {
        name: (info["columns"], info["unique"])
        for name, info in found.items()
        if (info["index"] or info["unique"]) and not info["primary_key"]
    }


def test_plays_have_one_unique_index_leading_with_the_track_and_no_track_index(db):
    """Every play enters each of these indexes; the unique (track, user, played_at) index also
    serves the lookups by track alone that the track's own index did (migration 0018)."""
    indexes = play_indexes()
    assert indexes["play_unique_track_user_played_at"] == (
        ["track_id", "user_id", "played_at"],
        True,
    )
    assert indexes["play_user_time_cover"][0][:2] == ["user_id", "played_at"]
    assert not [name for name, (columns, _) in indexes.items() if columns == ["track_id"]]
    expected = {"play_unique_track_user_played_at", "play_user_time_cover"}
    if connection.vendor == "sqlite":  # it keeps the unique constraint written in its table
        expected.add("play_unique_user_track_played_at")
    assert set(indexes) == expected


def test_a_lookup_by_track_alone_reads_an_index(user, make_track, make_play):
    track = make_track()
    make_play(user, track, WHEN)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN SELECT id FROM history_play WHERE track_id = %s", [track.pk])
        else:
            cursor.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM history_play WHERE track_id = %s", [track.pk]
            )
        plan = " ".join(str(part) for row in cursor.fetchall() for part in row)
    assert "play_unique_track_user_played_at" in plan, plan
    assert Play.objects.filter(track=track).count() == 1
