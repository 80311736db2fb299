"""`/healthz`: database, broker and worker state; 503 when any one is down."""

import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from config.celery import HEARTBEAT_CACHE_KEY, app


def check_database() -> dict[str, object]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True, "vendor": connection.vendor}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def check_broker() -> dict[str, object]:
    transport = settings.CELERY_BROKER_URL.split(":", 1)[0]
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        return {"ok": True, "transport": transport}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "transport": transport, "error": f"{type(exc).__name__}: {exc}"}


def check_worker() -> dict[str, object]:
    try:
        heartbeat = cache.get(HEARTBEAT_CACHE_KEY)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"cache unreachable: {type(exc).__name__}: {exc}"}
    if not heartbeat:
        return {"ok": False, "error": "no worker heartbeat yet; is a worker running?"}
    age = time.time() - heartbeat["at"]
    ok = age <= 3 * settings.WORKER_HEARTBEAT_SECONDS
    result: dict[str, object] = {
        "ok": ok,
        "hostname": heartbeat["hostname"],
        "seconds_since_heartbeat": round(age, 1),
    }
    if not ok:
        result["error"] = "the worker heartbeat is stale; the worker may be down"
    return result


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": check_database(), "broker": check_broker(), "worker": check_worker()}
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ok else "error", **checks}, status=200 if ok else 503)
