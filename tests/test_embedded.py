"""The embedded default end to end: the Procfile's web, worker and beat on SQLite and Celery's
filesystem broker in a temporary folder, as `make run` starts them."""

import http.cookiejar
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import IO

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def embedded_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.pop("CELERY_BROKER_URL", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="embedded-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        WORKER_HEARTBEAT_SECONDS="1",
        CELERY_CONCURRENCY="1",
        WEB_CONCURRENCY="1",
        HOST="127.0.0.1",
        PATH=f"{BIN}:{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def start(env: dict[str, str], port: int, log: IO[str], *processes: str) -> subprocess.Popen:
    """The Procfile's processes, as `make run` starts them, in a session of their own."""
    return subprocess.Popen(
        [str(BIN / "honcho"), "start", "--port", str(port), *processes],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError:
        return 0, {}


def test_web_worker_and_beat_run_a_task_through_the_filesystem_broker(embedded_env, tmp_path):
    manage(embedded_env, "migrate", "--no-input")
    assert (tmp_path / "var" / "db.sqlite3").exists()
    port = free_port()
    log = (tmp_path / "honcho.log").open("w")
    honcho = start(embedded_env, port, log, "web", "worker", "beat")
    try:
        health = f"http://127.0.0.1:{port}/healthz"
        _, body = wait_for(
            lambda: (r := get_json(health))[0] == 200 and r, 60, "a healthy /healthz"
        )
        assert body["database"]["vendor"] == "sqlite"
        assert body["broker"]["transport"] == "filesystem"
        assert body["worker"]["ok"] is True
        # The addresses handed to assistants are this server's, at the port it was given.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/schema/?format=json") as r:
            assert json.load(r)["servers"] == [{"url": f"http://127.0.0.1:{port}"}]

        # A task sent through the broker by another process is run by the worker.
        manage(
            embedded_env,
            "shell",
            "-c",
            "from datetime import timedelta; from django.utils import timezone; "
            "from apps.history.models import LogEvent; "
            "LogEvent.objects.create(created_at=timezone.now() - timedelta(days=400), "
            "level=30, logger='e2e', message='ancient')",
        )
        manage(
            embedded_env,
            "shell",
            "-c",
            "from apps.history.tasks import purge_old_log_events; purge_old_log_events.delay()",
        )
        count = (
            "from apps.history.models import LogEvent; "
            "print(LogEvent.objects.filter(logger='e2e').count())"
        )
        wait_for(
            lambda: manage(embedded_env, "shell", "-c", count).splitlines()[-1] == "0",
            60,
            "the purge",
        )

        # Beat copied the code schedule into the database scheduler's tables.
        names = (
            "from django_celery_beat.models import PeriodicTask; "
            "print(sorted(PeriodicTask.objects.values_list('name', flat=True)))"
        )
        assert "purge-old-log-events" in manage(embedded_env, "shell", "-c", names)
    finally:
        os.killpg(honcho.pid, signal.SIGINT)  # what Ctrl-C on `make run` sends
        try:
            honcho.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            raise
        log.close()
    output = (tmp_path / "honcho.log").read_text()
    assert "Booting worker" in output  # gunicorn
    assert "celery@" in output and "ready" in output  # the worker
    assert "beat: Starting" in output
    # Everything began a clean stop. Web and beat stop by themselves; an idle worker's warm
    # shutdown takes Celery 2-5 s (its event loop waits up to 2 s for the broker), so on a busy
    # machine honcho's 5 s grace may end it, which loses nothing: tasks are acknowledged late.
    assert "SIGKILL to web" not in output and "SIGKILL to beat" not in output, output[-2000:]
    assert "Warm shutdown" in output, output[-2000:]
    # Every process stopped: nothing is still listening on the port.
    assert get_json(f"http://127.0.0.1:{port}/healthz")[0] == 0


def test_the_commands_json_output_is_json_alone(embedded_env, tmp_path):
    """`import_export --json` and `call_tool` print JSON that a script can parse: the logs go
    to standard error, not into the output."""

    from tests.imports.conftest import extended

    manage(embedded_env, "migrate", "--no-input")
    create = "from apps.accounts.models import User; User.objects.create_user('alice')"
    manage(embedded_env, "shell", "-c", create)
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        records = [
            extended("2025-03-14T18:23:41Z", track="Karma Police", artist="Radiohead"),
            extended("2025-03-15T09:00:00Z", track="Karma Police", artist="Radiohead"),
        ]
        archive.writestr("Streaming_History_Audio_2025.json", json.dumps(records))

    out = manage(embedded_env, "import_export", str(path), "--user", "alice", "--json")
    summary = json.loads(out)
    assert (summary["records"], summary["plays_added"], summary["status"]) == (
        2,
        2,
        "succeeded",
    )
    out = manage(
        embedded_env, "call_tool", "history_top_tracks", "--user", "alice", "--args", '{"days": 0}'
    )
    tracks = json.loads(out)["tracks"]
    assert [(t["name"], t["listens"]) for t in tracks] == [("Karma Police", 2)]


def test_empty_service_urls_are_the_embedded_default(embedded_env, tmp_path):
    """`DATABASE_URL=` and `REDIS_URL=` left empty (in .env, say) mean SQLite and the folder
    broker under VAR_DIR, as unset ones do."""
    env = {**embedded_env, "DATABASE_URL": "", "REDIS_URL": ""}
    shown = "print(settings.DATABASES['default']['NAME'], settings.CELERY_BROKER_URL)"
    out = manage(env, "shell", "-c", f"from django.conf import settings; {shown}")
    last = out.strip().splitlines()[-1]
    assert last.split() == [str(tmp_path / "var" / "db.sqlite3"), "filesystem://localhost/"]


def _signed_in(base: str) -> tuple[str, str]:
    """Sign in as bob; the session's Cookie header and the upload page's CSRF token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def token(page: str) -> str:
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert match, page[:500]
        return match.group(1)

    with opener.open(f"{base}/accounts/login/") as r:
        form = {"csrfmiddlewaretoken": token(r.read().decode()), "login": "bob"}
    form["password"] = "Listen-2026-x"
    request = urllib.request.Request(
        f"{base}/accounts/login/",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Referer": f"{base}/accounts/login/"},
    )
    with opener.open(request) as r:
        assert r.url == f"{base}/", r.url
    with opener.open(f"{base}/imports/") as r:
        csrf = token(r.read().decode())
    return "; ".join(f"{c.name}={c.value}" for c in jar), csrf


def test_an_upload_slower_than_the_web_timeout_is_kept_and_the_site_answers_meanwhile(
    embedded_env, tmp_path
):
    """An export sent over a slow line takes longer than gunicorn's worker timeout (30 s; 2 s
    here): the Procfile's web server must neither kill the request nor stop serving others
    while it is read."""
    from tests.imports.conftest import extended

    manage(embedded_env, "migrate", "--no-input")
    create = (
        "from apps.accounts.models import User; "
        "User.objects.create_user('bob', password='Listen-2026-x')"
    )
    manage(embedded_env, "shell", "-c", create)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        records = [extended(f"2025-03-14T18:{m:02d}:00Z", track=f"Song {m}") for m in range(60)]
        archive.writestr("Streaming_History_Audio_2025.json", json.dumps(records))
    port = free_port()
    env = {**embedded_env, "GUNICORN_CMD_ARGS": "--timeout 2"}
    log = (tmp_path / "web.log").open("w")
    web = start(env, port, log, "web")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_json(f"{base}/healthz")[0] in (200, 503), 60, "the web server")
        cookie, csrf = _signed_in(base)
        boundary = "export-boundary"
        body = (
            (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="csrfmiddlewaretoken"\r\n\r\n{csrf}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                'filename="my_spotify_data.zip"\r\nContent-Type: application/zip\r\n\r\n'
            ).encode()
            + buffer.getvalue()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        with socket.create_connection(("127.0.0.1", port), timeout=30) as upload:
            upload.sendall(
                (
                    f"POST /imports/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n"
                    f"Referer: {base}/imports/\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                ).encode()
            )
            started = time.monotonic()
            answers = []
            parts = 12
            for i in range(parts):  # about 6 s in all, three times the timeout
                upload.sendall(body[i * len(body) // parts : (i + 1) * len(body) // parts])
                time.sleep(0.5)
                if i % 4 == 1:
                    asked = time.monotonic()
                    answers.append((get_json(f"{base}/healthz")[0], time.monotonic() - asked))
            reply = upload.recv(4096).decode(errors="replace")
        assert time.monotonic() - started > 5
        assert reply.startswith("HTTP/1.1 302"), reply[:300]
        location = re.search(r"Location: (\S+)", reply)
        assert location and location.group(1).startswith("/imports/?job="), reply[:300]
        # Another request was answered while the upload was being read.
        assert [status for status, _ in answers] == [503, 503, 503]  # no worker runs here
        assert max(seconds for _, seconds in answers) < 2, answers
        job = (
            "from apps.imports.models import ImportJob; "
            "j = ImportJob.objects.get(); print(j.user.username, j.status, j.file.size)"
        )
        username, status, size = manage(embedded_env, "shell", "-c", job).split()[-3:]
        assert (username, status, int(size)) == ("bob", "pending", len(buffer.getvalue()))
    finally:
        os.killpg(web.pid, signal.SIGINT)
        web.wait(timeout=30)
        log.close()
    assert "WORKER TIMEOUT" not in (tmp_path / "web.log").read_text()
