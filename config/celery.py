"""The Celery app. Workers and Beat start with `celery -A config worker|beat`."""

import os
import time

from celery import Celery, bootsteps
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("spotify_history")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

HEARTBEAT_CACHE_KEY = "celery:worker-heartbeat"


def write_heartbeat(hostname: str) -> None:
    """Record that a worker is alive; /healthz reads it."""
    from django.core.cache import cache

    cache.set(HEARTBEAT_CACHE_KEY, {"hostname": hostname, "at": time.time()}, timeout=None)


class Heartbeat(bootsteps.StartStopStep):
    """Writes the worker heartbeat at start and every WORKER_HEARTBEAT_SECONDS."""

    requires = ("celery.worker.components:Timer",)

    def start(self, worker):
        from django.conf import settings

        def beat() -> None:
            try:
                write_heartbeat(worker.hostname)
            except Exception:  # a cache outage must not stop the worker
                import logging

                logging.getLogger(__name__).exception("Could not write the worker heartbeat")

        beat()
        self.tref = worker.timer.call_repeatedly(settings.WORKER_HEARTBEAT_SECONDS, beat)

    def stop(self, worker):
        tref = getattr(self, "tref", None)
        if tref is not None:
            tref.cancel()


app.steps["worker"].add(Heartbeat)


@task_prerun.connect
def _bind_request_id(task_id: str | None = None, **kwargs: object) -> None:
    """Logs written while a task runs carry its task id as their request id."""
    from config.logging import request_id

    request_id.set(task_id or "-")


@task_postrun.connect
def _unbind_request_id(**kwargs: object) -> None:
    from config.logging import request_id

    request_id.set("-")
