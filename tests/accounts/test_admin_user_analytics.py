from datetime import timedelta

from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.history import selectors


def test_the_user_change_page_links_to_the_analytics_page(admin_client, user):
    body = admin_client.get(reverse("admin:accounts_user_change", args=[user.pk])).content.decode()
    assert f'href="/admin/accounts/user/{user.pk}/analytics/"' in body


def test_the_analytics_page_shows_that_users_numbers(
    admin_client, user, other_user, make_track, make_play
):
    now = timezone.now()
    song = make_track("Paranoid Android", "Radiohead", "OK Computer")
    other = make_track("Teardrop", "Massive Attack", "Mezzanine")
    for days in (1, 2, 3):
        make_play(user, song, now - timedelta(days=days))
    for days in (1, 2):
        make_play(other_user, other, now - timedelta(days=days))
    url = reverse("admin:accounts_user_analytics", args=[user.pk])
    response = admin_client.get(url, {"days": "30"})
    body = " ".join(response.content.decode().split())
    window = selectors.resolve_window(user=user, days=30)
    expected = selectors.listening_heatmap(user=user, window=window)
    assert response.context["report"].heatmap.matrix == expected.matrix
    assert sum(map(sum, expected.matrix)) == 3
    assert '<p class="big" id="total-listens">3</p>' in body
    assert "Radiohead" in body and "Massive Attack" not in body
    assert "Listening analytics of alice" in body
    assert 'class="current" aria-current="true">30 days</a>' in body


def test_staff_without_view_permission_is_refused(client, user):
    staff = User.objects.create_user(username="helper", password="pw-helper-1", is_staff=True)
    client.force_login(staff)
    response = client.get(reverse("admin:accounts_user_analytics", args=[user.pk]))
    assert response.status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_user"))
    response = client.get(reverse("admin:accounts_user_analytics", args=[user.pk]))
    assert response.status_code == 200


def test_an_unknown_user_is_404(admin_client, db):
    assert admin_client.get("/admin/accounts/user/999999/analytics/").status_code == 404
