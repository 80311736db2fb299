import logging

from celery import shared_task

from apps.history import services

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def purge_old_log_events() -> int:
    deleted = services.purge_log_events()
    logger.info("Purged %d old log events", deleted)
    return deleted
