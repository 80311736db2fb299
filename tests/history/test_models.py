"""The data model's own guarantees: one play one row, and per-user reads."""

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction

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
