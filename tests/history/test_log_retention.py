import logging
from datetime import timedelta

from django.utils import timezone

from apps.history.models import LogEvent
from apps.history.tasks import purge_old_log_events


def test_the_retention_task_deletes_old_rows_and_keeps_recent_ones(db, settings):
    settings.LOG_RETENTION_DAYS = 30
    now = timezone.now()
    old = LogEvent.objects.create(
        created_at=now - timedelta(days=31), level=30, logger="t", message="old"
    )
    edge = LogEvent.objects.create(
        created_at=now - timedelta(days=29), level=30, logger="t", message="recent"
    )
    assert purge_old_log_events() == 1
    assert not LogEvent.objects.filter(pk=old.pk).exists()
    assert LogEvent.objects.filter(pk=edge.pk).exists()


def test_warnings_are_stored_as_log_events_with_their_user(user):
    logging.getLogger("apps.test").warning("Spotify said no for %s", "alice", extra={"user": user})
    event = LogEvent.objects.get(logger="apps.test")
    assert (event.level, event.message, event.user) == (30, "Spotify said no for alice", user)


def test_info_lines_are_stored_only_when_asked(db):
    logging.getLogger("apps.test").info("routine")
    logging.getLogger("apps.test").info("imported 3 plays", extra={"store": True, "plays": 3})
    assert list(LogEvent.objects.values_list("message", "extra")) == [
        ("imported 3 plays", {"plays": 3})
    ]


def test_a_log_that_cannot_be_stored_never_fails_the_caller(db, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(LogEvent.objects, "create", broken)
    logging.getLogger("apps.test").error("still logged to stdout")
    assert LogEvent.objects.count() == 0
