from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.history.models import LogEvent


def purge_log_events(*, older_than_days: int | None = None) -> int:
    """Delete LogEvent rows older than the given days (LOG_RETENTION_DAYS by default)."""
    days = settings.LOG_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = LogEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def request_best_days(*, user_id: int) -> None:
    """Count the user's tracks' biggest days in a worker once the current transaction commits.
    A change of zone leaves all of them to count again: seconds for a large history, which the
    first question about them would otherwise wait for."""
    from apps.history import tasks

    transaction.on_commit(lambda: tasks.refresh_best_days.delay(user_id))
