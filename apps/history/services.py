from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.history.models import LogEvent


def purge_log_events(*, older_than_days: int | None = None) -> int:
    """Delete LogEvent rows older than the given days (LOG_RETENTION_DAYS by default)."""
    days = settings.LOG_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = LogEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
