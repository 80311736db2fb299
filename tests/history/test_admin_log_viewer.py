from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.history.models import JobRun, LogEvent

CHANGELIST = "/admin/history/logevent/"


@pytest.fixture
def logs(user, other_user):
    now = timezone.now()
    run = JobRun.objects.create(user=user, type=JobRun.Type.POLL)
    sync = JobRun.objects.create(user=other_user, type=JobRun.Type.INITIAL_SYNC)
    {
        "poll-warning": LogEvent.objects.create(
            level=30,
            logger="apps.history.tasks",
            message="Spotify answered 429",
            user=user,
            job_run=run,
        ),
        "sync-error": LogEvent.objects.create(
            level=40,
            logger="apps.accounts.spotify",
            message="invalid_grant for bob",
            user=other_user,
            job_run=sync,
        ),
        "old-info": LogEvent.objects.create(
            level=20,
            logger="apps.imports.services",
            message="Import finished",
            created_at=now - timedelta(days=40),
        ),
    }
    return run


def _messages(admin_client, **params):
    response = admin_client.get(CHANGELIST, params)
    assert response.status_code == 200
    return sorted(obj.message for obj in response.context["cl"].result_list)


def test_filters_by_level_logger_user_job_and_time(admin_client, logs, user):
    run = logs
    assert _messages(admin_client, level="40") == ["invalid_grant for bob"]
    assert _messages(admin_client, logger="apps.imports.services") == ["Import finished"]
    assert _messages(admin_client, user__id__exact=str(user.pk)) == ["Spotify answered 429"]
    assert _messages(admin_client, job="initial_sync") == ["invalid_grant for bob"]
    assert _messages(admin_client, job=str(run.pk)) == ["Spotify answered 429"]
    assert _messages(admin_client, job="none") == ["Import finished"]
    since = str(timezone.now() - timedelta(days=7))
    assert _messages(admin_client, created_at__gte=since) == [
        "Spotify answered 429",
        "invalid_grant for bob",
    ]


def test_search_on_the_message(admin_client, logs):
    assert _messages(admin_client, q="429") == ["Spotify answered 429"]


def test_the_list_shows_level_names_and_links_the_job(admin_client, logs):
    run = logs
    body = admin_client.get(CHANGELIST).content.decode()
    assert "WARNING" in body and "ERROR" in body
    assert reverse("admin:history_jobrun_change", args=[run.pk]) in body
    assert 'id="purge-link"' in body


def test_the_job_run_page_links_to_its_log_lines(admin_client, logs):
    run = logs
    body = admin_client.get(reverse("admin:history_jobrun_change", args=[run.pk])).content
    assert f'href="/admin/history/logevent/?job={run.pk}"'.encode() in body


def test_purge_deletes_only_lines_older_than_the_days_given(admin_client, logs):
    page = admin_client.get(reverse("admin:history_logevent_purge"))
    assert "There are 3 log lines." in page.content.decode()
    response = admin_client.post(
        reverse("admin:history_logevent_purge"), {"days": "30"}, follow=True
    )
    assert "Deleted 1 log line older than 30 days." in response.content.decode()
    assert sorted(LogEvent.objects.values_list("message", flat=True)) == [
        "Spotify answered 429",
        "invalid_grant for bob",
    ]


def test_purge_refuses_a_negative_number(admin_client, logs):
    response = admin_client.post(reverse("admin:history_logevent_purge"), {"days": "-1"})
    assert "greater than or equal to 0" in response.content.decode()
    assert LogEvent.objects.count() == 3


def test_staff_without_delete_permission_cannot_purge(client, logs):
    staff = User.objects.create_user(username="viewer", password="pw-viewer-1", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_logevent"))
    client.force_login(staff)
    assert 'id="purge-link"' not in client.get(CHANGELIST).content.decode()
    assert client.post(reverse("admin:history_logevent_purge"), {"days": "0"}).status_code == 403
    assert LogEvent.objects.filter(message="Import finished").exists()
