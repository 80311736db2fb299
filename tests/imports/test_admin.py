"""Staff upload an export for any user from the admin's ImportJob add form."""

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.history.models import Play
from apps.imports.models import ImportJob
from apps.imports.tasks import ingest_import
from tests.imports.conftest import build_zip, extended


def test_staff_upload_an_export_for_another_user(
    admin_client, user, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    content = build_zip({"Streaming_History_Audio_2025.json": [extended("2025-01-01T10:00:00Z")]})
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            "/admin/imports/importjob/add/",
            {"user": user.pk, "file": SimpleUploadedFile("export.zip", content)},
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = ImportJob.objects.get()
    assert (job.user, job.original_name, job.size, job.status) == (
        user,
        "export.zip",
        len(content),
        "pending",
    )
    assert len(callbacks) == 1
    ingest_import.run(job.pk)
    assert Play.objects.for_user(user).count() == 1
    page = admin_client.get(f"/admin/imports/importjob/{job.pk}/change/").content.decode()
    assert "succeeded" in page.lower()


def test_the_add_form_refuses_an_export_over_the_limit(admin_client, user, settings):
    settings.IMPORT_MAX_ZIP_SIZE_MB = 1
    response = admin_client.post(
        "/admin/imports/importjob/add/",
        {"user": user.pk, "file": SimpleUploadedFile("big.zip", b"x" * (1024 * 1024 + 1))},
    )
    assert "The file is larger than the 1 MB limit (IMPORT_MAX_ZIP_SIZE_MB)." in (
        response.content.decode()
    )
    assert not ImportJob.objects.exists()


def test_a_failed_import_can_run_again(
    admin_client, user, tmp_path, django_capture_on_commit_callbacks
):
    path = tmp_path / "bad.zip"
    path.write_bytes(b"not a zip")
    job = ImportJob.objects.create(user=user, local_path=str(path), status="failed", error="x")
    with django_capture_on_commit_callbacks() as callbacks:
        admin_client.post(
            "/admin/imports/importjob/",
            {"action": "run_again", "_selected_action": [job.pk]},
        )
    job.refresh_from_db()
    assert (job.status, job.error, len(callbacks)) == ("pending", "", 1)
