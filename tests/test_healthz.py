"""`/healthz` reports the database, the broker and the worker heartbeat."""

import time

import pytest
from django.core.cache import cache

from config.celery import HEARTBEAT_CACHE_KEY, write_heartbeat


@pytest.fixture(autouse=True)
def _clean_heartbeat():
    cache.delete(HEARTBEAT_CACHE_KEY)
    yield
    cache.delete(HEARTBEAT_CACHE_KEY)


def test_healthy_when_database_broker_and_worker_are_up(client, db):
    write_heartbeat("celery@test")
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert body["worker"]["hostname"] == "celery@test"


def test_503_when_the_broker_is_unreachable(client, db, settings):
    from config.celery import app

    write_heartbeat("celery@test")
    old = app.conf.broker_url
    app.conf["broker_url"] = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/healthz")
    finally:
        app.conf["broker_url"] = old
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "error"
    assert body["broker"]["ok"] is False and "Error" in body["broker"]["error"]
    assert body["database"]["ok"] is True


def test_503_without_a_worker_heartbeat(client, db):
    body = client.get("/healthz").json()
    assert body["worker"] == {"ok": False, "error": "no worker heartbeat yet; is a worker running?"}


def test_a_stale_heartbeat_means_the_worker_is_down(client, db, settings):
    cache.set(HEARTBEAT_CACHE_KEY, {"hostname": "celery@old", "at": time.time() - 3600})
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "stale" in response.json()["worker"]["error"]


def test_every_response_carries_a_request_id(client, db):
    given = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    made = client.get("/healthz", HTTP_X_REQUEST_ID="bad id with spaces")
    assert given["X-Request-ID"] == "abc-123"
    assert made["X-Request-ID"] != "bad id with spaces" and len(made["X-Request-ID"]) == 32
