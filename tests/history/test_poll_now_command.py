from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.history.models import Play

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command("poll_now", *args, stdout=out)
    return out.getvalue()


def test_poll_now_polls_and_prints_what_it_did(user, connect_fake, fake_spotify):
    connect_fake(user)
    for i in range(3):
        fake_spotify.add_play(
            "alice", played_at=timezone.now() - timedelta(minutes=i), name=f"S{i}"
        )

    out = run("--user", "alice")

    assert "Poll of alice: 1 Spotify requests, 3 plays fetched, 3 added, 0 already known" in out
    assert Play.objects.for_user(user).count() == 3


def test_poll_now_initial_runs_the_initial_sync(user, connect_fake, fake_spotify):
    connect_fake(user)
    for i in range(60):
        fake_spotify.add_play("alice", played_at=timezone.now() - timedelta(hours=i), name=f"S{i}")

    out = run("--user", "alice", "--initial")

    assert "Initial sync of alice: 3 Spotify requests, 60 plays fetched, 60 added" in out
    assert "stopped on empty_page" in out


def test_poll_now_explains_errors(user, connect_fake, fake_spotify):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("--user", "nobody")
    connect_fake(user)
    fake_spotify.users["alice"].registered = False
    with pytest.raises(CommandError, match="allow-list"):
        run("--user", "alice")


def test_poll_now_says_when_a_user_is_skipped(user):
    assert "skipped: not collecting" in run("--user", "alice")
