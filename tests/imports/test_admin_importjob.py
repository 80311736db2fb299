from django.urls import reverse

from apps.imports.models import ImportJob


def test_the_change_page_shows_progress_and_skips_in_a_table(admin_client, user):
    job = ImportJob.objects.create(
        user=user,
        file="imports/2026/11/export.zip",
        original_name="my_spotify_data.zip",
        status=ImportJob.Status.RUNNING,
        records_total=30000,
        records_processed=12000,
        records_seen=12000,
        plays_added=11000,
        duplicates=950,
        formats=["extended_audio", "account_music"],
        ignored_files=["Userdata.json", "Read Me First.pdf"],
        skipped={"invalid_timestamp": 20, "name_too_long": 30},
    )
    body = " ".join(
        admin_client.get(reverse("admin:imports_importjob_change", args=[job.pk]))
        .content.decode()
        .split()
    )
    assert '<progress class="import-progress" max="100" value="40.0"></progress> 40.0%' in body
    assert "12,000 of 30,000 records processed" in body
    assert (
        '<tbody><tr><td>a name over 512 characters</td><td class="num">30</td></tr>'
        '<tr><td>timestamp missing or malformed</td><td class="num">20</td></tr></tbody>'
        '<tfoot><tr><th>Total</th><th class="num">50</th></tr></tfoot>'
    ) in body
    assert "extended_audio, account_music" in body
    assert "<li>Userdata.json</li><li>Read Me First.pdf</li>" in body
    assert 'name="file"' not in body  # the uploaded file is not replaceable


def test_a_job_without_skips_says_none(admin_client, user):
    job = ImportJob.objects.create(user=user, file="x.zip", status=ImportJob.Status.SUCCEEDED)
    body = admin_client.get(reverse("admin:imports_importjob_change", args=[job.pk])).content
    assert b'<div class="readonly">None</div>' in body
    assert b'value="100.0"' in body
