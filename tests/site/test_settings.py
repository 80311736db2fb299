from datetime import UTC, date, datetime

from django.urls import reverse

from apps.history import tasks, totals
from apps.history.models import DayTotal, TrackTotal


def test_settings_shows_the_current_zone_selected(client, user):
    user.timezone = "America/Los_Angeles"
    user.save()
    client.force_login(user)
    body = client.get(reverse("settings")).content.decode()
    assert '<option value="America/Los_Angeles" selected>' in body
    assert 'src="/static/js/settings.js"' in body


def test_saving_a_zone_stores_it(client, user):
    client.force_login(user)
    response = client.post(reverse("settings"), {"timezone": "Europe/Paris"}, follow=True)
    user.refresh_from_db()
    assert user.timezone == "Europe/Paris"
    assert "Time zone saved: Europe/Paris." in response.content.decode()


def test_an_unknown_zone_is_refused_with_a_message(client, user):
    client.force_login(user)
    response = client.post(reverse("settings"), {"timezone": "Mars/Olympus"})
    user.refresh_from_db()
    assert user.timezone == "UTC"
    assert "Select a valid choice" in response.content.decode()


def test_saving_a_zone_changes_only_the_viewer(client, user, other_user):
    client.force_login(user)
    client.post(reverse("settings"), {"timezone": "Asia/Tokyo"})
    other_user.refresh_from_db()
    assert other_user.timezone == "UTC"


def test_a_new_zone_has_the_biggest_days_counted_in_a_worker(
    postgres, client, user, make_track, make_play, django_capture_on_commit_callbacks
):
    """The days of a new zone are counted when it is saved; the biggest day of each track, all
    of them left to count again, by a task queued then, not by the first question."""
    song = make_track("Song", "Artist")
    # The 1st and 2nd of March in UTC; all on the 2nd in Tokyo (09:00 and 09:30 there).
    for at in ("2026-03-01T23:30", "2026-03-02T00:00", "2026-03-02T00:30"):
        make_play(user, song, datetime.fromisoformat(at).replace(tzinfo=UTC))
    totals.refresh_best_days(user.pk)
    client.force_login(user)

    with django_capture_on_commit_callbacks() as callbacks:
        client.post(reverse("settings"), {"timezone": "Asia/Tokyo"})
    assert [c.__code__.co_names for c in callbacks] == [("refresh_best_days", "delay")]
    assert TrackTotal.objects.filter(user=user, best_days_stale=True).count() == 1
    assert tasks.refresh_best_days(user.pk) == 1
    best = TrackTotal.objects.get(user=user, track=song)
    assert (best.best_days_stale, best.best_day_plays, best.best_day_plays_on) == (
        False,
        3,
        date(2026, 3, 2),
    )
    assert set(DayTotal.objects.filter(user=user).values_list("day", "plays")) == {
        (date(2026, 3, 2), 3)
    }

    # Saving the same zone again queues nothing.
    with django_capture_on_commit_callbacks() as callbacks:
        client.post(reverse("settings"), {"timezone": "Asia/Tokyo"})
    assert callbacks == []
