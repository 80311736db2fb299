from datetime import UTC, datetime

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from apps.accounts.models import SpotifyAccount, User
from apps.history import totals
from apps.history.models import (
    ArtistMonthTotal,
    ArtistYearTotal,
    DayTotal,
    HourTotal,
    JobRun,
    LogEvent,
    Play,
    SyncCheckpoint,
    TrackTotal,
)
from apps.imports.models import ImportJob


@pytest.fixture
def alices_data(user, other_user, make_track, make_play, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    track = make_track("Paranoid Android", "Radiohead", "OK Computer")
    for day in range(1, 4):
        make_play(user, track, datetime(2025, 1, day, tzinfo=UTC))
    make_play(other_user, track, datetime(2025, 1, 1, tzinfo=UTC))
    SpotifyAccount.objects.create(user=user, spotify_id="alice-sp", refresh_token="secret-r")
    SyncCheckpoint.objects.create(user=user)
    run = JobRun.objects.create(user=user, type=JobRun.Type.POLL)
    LogEvent.objects.create(level=30, logger="t", message="x", user=user, job_run=run)
    job = ImportJob(user=user, original_name="my_spotify_data.zip")
    job.file.save("export.zip", ContentFile(b"PK fake zip"), save=True)
    return job.file.name


def test_the_confirmation_page_says_what_will_go(client, user, alices_data):
    client.force_login(user)
    body = " ".join(client.get(reverse("delete_data")).content.decode().split())
    assert "your <strong>3</strong> plays;" in body
    assert "your <strong>1</strong> import and their uploaded files;" in body


def test_a_wrong_confirmation_deletes_nothing(client, user, alices_data):
    client.force_login(user)
    response = client.post(reverse("delete_data"), {"confirm": "bob"})
    assert "That is not your username; nothing was deleted." in response.content.decode()
    assert Play.objects.for_user(user).count() == 3
    assert User.objects.filter(pk=user.pk).exists()


def test_deleting_removes_every_row_and_file_of_the_user_and_nothing_else(
    client, user, other_user, alices_data, django_capture_on_commit_callbacks
):
    assert default_storage.exists(alices_data)
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("delete_data"), {"confirm": "alice"}, follow=True)
    assert "Your account is deleted: 3 plays and 1 imports are gone" in response.content.decode()
    assert response.context["user"].is_anonymous
    assert not User.objects.filter(username="alice").exists()
    assert Play.objects.filter(user_id=user.pk).count() == 0
    # The totals too, which have no foreign key constraint in the database.
    counted = (TrackTotal, HourTotal, DayTotal, ArtistMonthTotal, ArtistYearTotal)
    for model in (SpotifyAccount, SyncCheckpoint, JobRun, ImportJob, *counted):
        assert not model.objects.filter(user_id=user.pk).exists(), model
    assert not LogEvent.objects.filter(user_id=user.pk).exists()
    assert not default_storage.exists(alices_data)
    assert Play.objects.for_user(other_user).count() == 1
    if totals.usable():  # PostgreSQL: the other user's play is still counted
        for model in counted:
            assert model.objects.filter(user_id=other_user.pk).count() == 1, model


def test_a_failed_deletion_rolls_back_and_keeps_the_files(user, alices_data, monkeypatch):
    from apps.accounts import services

    def boom(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(User, "delete", boom)
    with pytest.raises(RuntimeError):
        services.delete_user_data(user=user)
    assert Play.objects.for_user(user).count() == 3
    assert default_storage.exists(alices_data)
