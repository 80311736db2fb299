"""The /imports/ page: upload, list, the size limit, CSRF and the JSON status endpoint."""

import json
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from apps.history.models import Play
from apps.imports.models import ImportJob
from apps.imports.tasks import ingest_import
from tests.imports.conftest import build_zip, extended

AUDIO = "Streaming_History_Audio_2025_0.json"


def upload(client, content: bytes, name: str = "my_spotify_data.zip"):
    return client.post(
        reverse("imports:index"), {"file": SimpleUploadedFile(name, content, "application/zip")}
    )


def test_the_page_needs_a_signed_in_user(client):
    response = client.get("/imports/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_uploading_stores_the_zip_creates_a_job_and_queues_the_ingest(
    client, user, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(user)
    content = build_zip(
        {
            AUDIO: [extended("2025-03-14T18:23:41Z"), extended("2025-03-15T09:00:00Z", ms="abc")],
            "Userdata.json": b"{}",
        }
    )
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(client, content)
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/imports/?job={job.pk}"
    assert len(callbacks) == 1  # the task, queued once the job is committed
    body = client.get("/imports/").content.decode()
    assert '<span class="job-progress-text">0 records · 0%</span>' in body
    assert (job.user, job.original_name, job.size, job.status) == (
        user,
        "my_spotify_data.zip",
        len(content),
        "pending",
    )
    stored = Path(job.file.path)
    assert stored.read_bytes() == content

    assert ingest_import.run(job.pk) == "succeeded"
    # Imported, the ZIP is deleted: it holds the IP addresses and the rest that imports drop.
    assert not stored.exists() and ImportJob.objects.get().file.name == ""
    body = client.get("/imports/").content.decode()
    assert "2 records: 1 plays added, 0 already known, 1 skipped" in body
    assert "Skipped: 1 with ms_played not a number, negative or over 24 hours." in body
    assert "Other files ignored: Userdata.json." in body
    status = client.get(reverse("imports:status", args=[job.pk])).json()
    assert (status["status"], status["records"], status["plays_added"], status["progress"]) == (
        "succeeded",
        2,
        1,
        100.0,
    )


def test_an_imported_upload_is_kept_only_with_import_keep_sensitive(
    client, user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    settings.IMPORT_KEEP_SENSITIVE = True
    client.force_login(user)
    content = build_zip({AUDIO: [extended("2025-03-14T18:23:41Z", ip_addr="192.0.2.1")]})
    upload(client, content)
    job = ImportJob.objects.get()
    assert ingest_import.run(job.pk) == "succeeded"
    job.refresh_from_db()
    assert Path(job.file.path).read_bytes() == content
    assert str(Play.objects.get().ip_addr) == "192.0.2.1"


def test_an_upload_over_the_limit_is_refused_from_its_length(client, user, settings):
    settings.IMPORT_MAX_ZIP_SIZE_MB = 1
    client.force_login(user)
    response = upload(client, b"PK" + b"x" * (1024 * 1024 + 70 * 1024))
    assert response.status_code == 413
    assert "The file is larger than the 1 MB limit (IMPORT_MAX_ZIP_SIZE_MB)." in (
        response.content.decode()
    )
    assert not ImportJob.objects.exists()


def test_the_upload_form_is_csrf_protected(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = upload(client, build_zip({AUDIO: []}))
    assert response.status_code == 403
    assert not ImportJob.objects.exists()


def test_the_status_endpoint_shows_only_your_own_jobs(client, user, other_user):
    job = ImportJob.objects.create(user=other_user, original_name="x.zip", bytes_total=100)
    client.force_login(user)
    assert client.get(reverse("imports:status", args=[job.pk])).status_code == 404
    client.force_login(other_user)
    ImportJob.objects.filter(pk=job.pk).update(
        status="running", records_processed=40, bytes_processed=40
    )
    data = json.loads(client.get(reverse("imports:status", args=[job.pk])).content)
    assert (data["status"], data["records"], data["progress"]) == ("running", 0, 40.0)


def test_a_failed_import_shows_its_error_on_the_page(
    client, user, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(user)
    with django_capture_on_commit_callbacks():
        upload(client, build_zip({"Userdata.json": b"{}"}))
    job = ImportJob.objects.get()
    assert ingest_import.run(job.pk) == "failed"
    body = client.get("/imports/").content.decode()
    assert f'<tr class="import-job" id="job-{job.pk}"' in body
    assert '<td class="job-status">Failed</td>' in body
    assert (
        '<span class="job-error">This ZIP holds no Spotify listening history: expected files '
        "such as Streaming_History_Audio_2024.json (Extended streaming history) or "
        "StreamingHistory_music_0.json (Account data).</span>"
    ) in body
