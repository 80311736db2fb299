"""Security headers, the CSP, CSRF on state changes, sign-in required, login rate limit."""

import pytest
from django.test import Client
from django.urls import reverse


def test_every_page_carries_the_security_headers_and_a_strict_csp(client, db):
    response = client.get(reverse("home"))
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_hsts_is_sent_on_https(client, db, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    response = client.get(reverse("home"), secure=True)
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_pages_have_no_inline_script(client, user):
    client.force_login(user)
    for name in ("home", "dashboard", "settings", "delete_data"):
        body = client.get(reverse(name)).content.decode()
        for chunk in body.split("<script")[1:]:
            head = chunk.split(">", 1)[0]
            assert "src=" in head, f"inline script on {name}"
        assert " style=" not in body, f"inline style on {name}"
        assert " onclick=" not in body


@pytest.mark.parametrize("name", ["dashboard", "settings", "delete_data"])
def test_signed_out_visitors_are_sent_to_sign_in(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("name", ["settings", "delete_data"])
def test_state_changes_without_a_csrf_token_are_refused(user, name):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(reverse(name), {"timezone": "Europe/Paris", "confirm": "alice"})
    assert response.status_code == 403
    user.refresh_from_db()
    assert user.timezone == "UTC"


def test_exports_and_the_dashboard_refuse_post(client, user):
    client.force_login(user)
    assert client.post(reverse("dashboard")).status_code == 405
    assert client.post(reverse("export_plays", args=["csv"])).status_code == 405


def test_repeated_failed_logins_are_rate_limited(client, user, settings):
    from django.core.cache import cache

    cache.clear()
    for _ in range(5):
        response = client.post(reverse("account_login"), {"login": "alice", "password": "wrong"})
        assert "not correct" in response.content.decode()
    response = client.post(reverse("account_login"), {"login": "alice", "password": "pw-alice-123"})
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    cache.clear()


def test_the_admin_login_goes_through_the_rate_limited_sign_in(client, db):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert response["Location"].endswith("?next=%2Fadmin%2F")
