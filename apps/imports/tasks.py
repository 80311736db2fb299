"""Thin Celery entry points for imports."""

import logging

from celery import shared_task

from apps.imports import services

logger = logging.getLogger(__name__)


# acks_late + reject_on_worker_lost: a worker killed mid-import leaves the message to be
# delivered again; the job resumes from its last committed batch either way.
@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=2 * 3600,
    soft_time_limit=2 * 3600 - 60,
    max_retries=None,
)
def ingest_import(self, job_id: int) -> str:
    try:
        job = services.run_import(job_id=job_id, task_id=self.request.id or "")
    except services.UserBusy:
        # One import per user at a time: wait for the running one.
        raise self.retry(countdown=30) from None
    if job is None:
        return "nothing to do"
    services.after_import(job)
    return job.status


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240)
def requeue_stale_imports() -> list[int]:
    return services.requeue_stale_jobs()


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240)
def scan_import_watch_dir() -> list[int]:
    return [job.pk for job in services.scan_watch_dir()]
