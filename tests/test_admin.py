"""Every ModelAdmin's changelist, search and change form render with real rows."""

from datetime import UTC, datetime

import pytest
from django.contrib import admin
from django.urls import reverse

from apps.accounts.models import SpotifyAccount
from apps.history.models import JobRun, LogEvent, SyncCheckpoint
from apps.imports.models import ImportJob, MergedPlay


@pytest.fixture
def one_of_everything(user, make_track, make_play):
    track = make_track("Paranoid Android", "Radiohead", "OK Computer")
    make_play(user, track, datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    SpotifyAccount.objects.create(user=user, spotify_id="alice-sp", refresh_token="r")
    SyncCheckpoint.objects.create(user=user)
    run = JobRun.objects.create(user=user, type=JobRun.Type.POLL)
    LogEvent.objects.create(level=30, logger="apps.test", message="a warning", job_run=run)
    job = ImportJob.objects.create(
        user=user, file="imports/x.zip", original_name="my_spotify_data.zip"
    )
    MergedPlay.objects.create(
        job=job,
        play_id=1,
        track_id=track.pk,
        played_at=datetime(2025, 1, 2, tzinfo=UTC),
        source="api",
    )


def registered_models():
    return sorted(admin.site._registry, key=lambda m: m._meta.label)


@pytest.mark.parametrize("model", registered_models(), ids=lambda m: m._meta.label)
def test_changelist_search_and_change_form_render(model, admin_client, one_of_everything):
    opts = model._meta
    changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    response = admin_client.get(changelist)
    assert response.status_code == 200, changelist
    obj = model._default_manager.first()
    if obj is not None:
        assert str(obj) in response.content.decode() or opts.model_name in ("user", "group")
    model_admin = admin.site._registry[model]
    if model_admin.search_fields:
        assert admin_client.get(changelist, {"q": "zzz-no-match"}).status_code == 200
    if obj is not None:
        change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        assert admin_client.get(change).status_code == 200, change


def test_every_project_model_is_in_the_admin():
    from django.apps import apps

    ours = [m for m in apps.get_models() if m.__module__.startswith("apps.")]
    inline_only = {"music.TrackArtist"}  # edited inline on the Track page
    ours = [m for m in ours if m._meta.label not in inline_only]
    missing = [m._meta.label for m in ours if m not in admin.site._registry]
    assert missing == []


def test_beats_periodic_tasks_are_in_the_admin(admin_client):
    response = admin_client.get("/admin/django_celery_beat/periodictask/")
    assert response.status_code == 200
    assert "Periodic tasks" in response.content.decode()


def test_the_plays_changelist_shows_a_bounded_count(admin_client, user, make_track, make_play):
    from apps.history.admin import BoundedCountPaginator

    track = make_track()
    for minute in range(5):
        make_play(user, track, datetime(2025, 1, 1, 0, minute, tzinfo=UTC))
    BoundedCountPaginator.MAX_COUNT, old = 3, BoundedCountPaginator.MAX_COUNT
    try:
        body = admin_client.get("/admin/history/play/").content.decode()
        BoundedCountPaginator.MAX_COUNT = 5  # exactly as many as there are: no "+"
        exact = admin_client.get("/admin/history/play/").content.decode()
    finally:
        BoundedCountPaginator.MAX_COUNT = old
    assert "3+ plays" in body  # at least 3: more than the bound
    assert "5 plays" in exact and "5+ plays" not in exact
    # A search shows its count with the same bound.
    BoundedCountPaginator.MAX_COUNT = 3
    try:
        found = admin_client.get("/admin/history/play/", {"q": "Artist"}).content.decode()
    finally:
        BoundedCountPaginator.MAX_COUNT = old
    assert "3+ results" in found and "3+ plays" in found


def test_plays_are_found_by_artist_name(admin_client, user, make_track, make_play):
    make_play(user, make_track("Karma Police", "Radiohead"), datetime(2025, 1, 1, tzinfo=UTC))
    make_play(user, make_track("Hyperballad", "Björk"), datetime(2025, 1, 2, tzinfo=UTC))
    body = admin_client.get("/admin/history/play/", {"q": "radiohead"}).content.decode()
    assert "Karma Police" in body and "Hyperballad" not in body
    assert "1 result" in body


def test_a_signed_in_person_who_is_not_staff_is_told_why_the_admin_is_closed(client, user):
    client.force_login(user)
    response = client.get("/admin/", follow=True)
    assert response.status_code == 403
    body = " ".join(response.content.decode().split())
    assert (
        "You are signed in as <strong>alice</strong>, and this page is not open to that account. "
        "The admin is for staff accounts"
    ) in body
    assert "Sign out (alice)" in body


def test_a_staff_person_without_a_permission_is_told_which_they_lack(client, user):
    user.is_staff = True
    user.save()
    client.force_login(user)
    response = client.get(reverse("admin:history_logevent_purge"))
    assert response.status_code == 403
    body = " ".join(response.content.decode().split())
    assert (
        "this page is not open to that account. Your staff account lacks the permission this "
        "page needs: a superuser can grant it on your user in the admin."
    ) in body
    assert "The admin is for staff accounts" not in body
