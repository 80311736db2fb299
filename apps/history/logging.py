"""A logging handler that keeps important events as LogEvent rows for the admin."""

import logging
import threading

from config.logging import extra_fields

_busy = threading.local()

# Loggers whose lines are never stored: the database layer (it would recurse) and noise.
_SKIPPED_PREFIXES = ("django.db", "django.security.DisallowedHost")


class DatabaseLogHandler(logging.Handler):
    """Stores WARNING and above, and any record logged with `extra={"store": True}`.

    Pass `user` (a User or id) and `job_run` (a JobRun or id) in `extra` to link the row. It never
    raises: a log that can't be stored must not fail the request or task that logged it.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and not getattr(record, "store", False):
            return
        if record.name.startswith(_SKIPPED_PREFIXES) or getattr(_busy, "active", False):
            return
        _busy.active = True
        try:
            self._store(record)
        except Exception:  # noqa: BLE001, S110 - the database may be down, locked or migrating
            pass
        finally:
            _busy.active = False

    def _store(self, record: logging.LogRecord) -> None:
        from django.db import connection, transaction

        from apps.history.models import LogEvent

        if connection.needs_rollback or not connection.is_usable():
            return
        extra = extra_fields(record)
        user = extra.pop("user", None)
        job_run = extra.pop("job_run", None)
        extra.pop("store", None)
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        with transaction.atomic():
            LogEvent.objects.create(
                level=record.levelno,
                logger=record.name[:128],
                message=message,
                request_id=str(getattr(record, "request_id", ""))[:128],
                user_id=_pk(getattr(record, "user", user)),
                job_run_id=_pk(getattr(record, "job_run", job_run)),
                extra=extra,
            )


def _pk(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    pk = getattr(value, "pk", None)
    return pk if isinstance(pk, int) else None
