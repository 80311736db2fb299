"""The upload page in Chromium: choose a file, watch the progress bar move, read the counts."""

import base64

import pytest
from django.conf import settings as django_settings

from apps.history.models import Play
from apps.imports.demo import write_demo_export
from apps.imports.models import ImportJob
from tests.conftest import screenshot
from tests.imports.conftest import build_zip, extended

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def sign_in(page, client, user, live_server) -> None:
    client.force_login(user)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def test_upload_shows_a_moving_progress_bar_then_the_counts(
    page, live_server, celery_worker, client, user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    settings.IMPORT_BATCH_SIZE = 500
    export = tmp_path / "my_spotify_data.zip"
    info = write_demo_export(export, records=15_000, seed=3)
    sign_in(page, client, user, live_server)

    page.goto("/imports/")
    assert page.locator("h1").inner_text() == "Import your Spotify data"
    page.set_input_files("input[type=file]", str(export))
    page.click("#upload-form button[type=submit]")

    # The bar moves: two different readings below 100 %.
    page.wait_for_selector("progress.job-progress")
    page.wait_for_function(
        "() => { const p = document.querySelector('progress.job-progress');"
        " return p && p.value > 0 && p.value < 100; }",
        timeout=60_000,
    )
    first = page.evaluate("document.querySelector('progress.job-progress').value")
    screenshot(page, "imports-progress")
    page.wait_for_function(
        f"() => {{ const p = document.querySelector('progress.job-progress');"
        f" return !p || p.value > {first}; }}",
        timeout=60_000,
    )

    counts = page.wait_for_selector(".job-counts", timeout=120_000)
    job = ImportJob.objects.get()
    assert job.status == "succeeded", job.error
    assert counts.inner_text() == (
        f"{info['records']} records: {job.plays_added} plays added, 0 already known, "
        f"{job.skipped_total} skipped"
    )
    assert Play.objects.for_user(user).count() == job.plays_added > 14_000
    screenshot(page, "imports-finished")


def test_a_file_over_the_limit_is_refused_in_the_page_before_upload(
    page, live_server, client, user, settings, tmp_path
):
    settings.IMPORT_MAX_ZIP_SIZE_MB = 1
    big = tmp_path / "big.zip"
    big.write_bytes(b"x" * (2 * 1024 * 1024))
    sign_in(page, client, user, live_server)
    page.goto("/imports/")
    page.set_input_files("input[type=file]", str(big))
    page.click("#upload-form button[type=submit]")
    error = page.wait_for_selector("#upload-errors li")
    assert error.inner_text() == "The file is larger than the 1 MB limit (IMPORT_MAX_ZIP_SIZE_MB)."
    assert not ImportJob.objects.exists()


def drop(page, name: str, content: bytes) -> None:
    """Drag a file over the drop zone and drop it, as from a file manager."""
    page.evaluate(
        """([name, encoded]) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], name, {type: "application/zip"}));
            const zone = document.getElementById("dropzone");
            for (const type of ["dragenter", "dragover"]) {
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, cancelable: true}));
            }
            window.overWhileDragging = zone.classList.contains("over");
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, cancelable: true}));
        }""",
        [name, base64.b64encode(content).decode()],
    )


def test_a_dropped_file_is_the_one_uploaded(page, live_server, client, user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    content = build_zip({"Streaming_History_Audio_2025_0.json": [extended("2025-03-14T18:23:41Z")]})
    sign_in(page, client, user, live_server)
    page.goto("/imports/")
    drop(page, "dropped_export.zip", content)
    assert page.evaluate("window.overWhileDragging") is True
    assert page.evaluate("document.getElementById('dropzone').classList.contains('over')") is False
    assert page.evaluate("document.querySelector('input[type=file]').files[0].name") == (
        "dropped_export.zip"
    )
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("tr.import-job")
    job = ImportJob.objects.get()
    assert (job.user, job.original_name, job.size) == (user, "dropped_export.zip", len(content))
    with open(job.file.path, "rb") as stored:
        assert stored.read() == content
