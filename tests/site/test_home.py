from django.urls import reverse


def test_home_offers_local_sign_in_and_says_when_spotify_is_not_configured(client, db):
    body = client.get(reverse("home")).content.decode()
    assert 'action="/accounts/login/"' in body
    assert 'name="password"' in body
    assert "csrfmiddlewaretoken" in body
    assert "Spotify sign-in is not set up on this server yet" in body


def test_signed_in_home_links_to_the_dashboard(client, user):
    client.force_login(user)
    body = client.get(reverse("home")).content.decode()
    assert 'href="/dashboard/"' in body
    assert 'name="password"' not in body
    assert "Sign out (alice)" in body


def test_local_sign_in_from_the_home_form_lands_signed_in(client, user):
    response = client.post(
        reverse("account_login"), {"login": "alice", "password": "pw-alice-123"}, follow=True
    )
    assert response.context["user"] == user
    assert "Sign out (alice)" in response.content.decode()


def test_the_sign_in_page_uses_the_site_layout(client, db):
    body = client.get(reverse("account_login")).content.decode()
    assert "Sign In · Listening history</title>" in " ".join(body.split())
    assert 'class="site-header"' in body


def test_the_pages_name_an_icon_and_favicon_ico_leads_to_it(client, db):
    body = client.get(reverse("home")).content.decode()
    assert '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in body
    response = client.get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (301, "/static/img/favicon.svg")
    icon = client.get("/static/img/favicon.svg")
    assert icon.status_code == 200
    assert b"".join(icon.streaming_content).startswith(b"<svg")
