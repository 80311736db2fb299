"""The assistants page: tokens shown once, the values to paste, authorised apps, revocation."""

from datetime import timedelta

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone
from django_mcpz.oauth.models import AccessToken, Client, RefreshToken

from apps.mcp.models import ApiToken, digest
from apps.mcp.services import authenticate_token, create_token


def _text(response):
    return " ".join(response.content.decode().split())


def test_a_new_token_is_shown_once_and_stored_as_a_digest(client, user):
    client.force_login(user)
    response = client.post(reverse("assistants"), {"name": "ChatGPT"}, follow=True)
    assert response.redirect_chain == [(reverse("assistants"), 302)]
    assert response["Cache-Control"] == "no-store"
    value = response.context["new_token"]["value"]
    body = _text(response)
    assert value.startswith("shk_")
    assert f'<input id="token-value" value="{value}" readonly>' in body
    assert f"Authorization: Bearer {value}" in body  # Claude Code and Cursor lines filled in
    token = ApiToken.objects.get(user=user)
    assert (token.name, token.digest) == ("ChatGPT", digest(value))
    assert value not in str(ApiToken.objects.values_list().get())
    again = _text(client.get(reverse("assistants")))
    assert value not in again
    assert f"<code>{value[:8]}…</code>" in again
    assert "&lt;your API token&gt;" in again
    found = authenticate_token(value)
    assert found is not None and found.user == user


def test_a_blank_name_is_refused(client, user):
    client.force_login(user)
    response = client.post(reverse("assistants"), {"name": "   "})
    assert "This field is required." in _text(response)
    assert not ApiToken.objects.exists()


def test_the_page_gives_the_schema_and_mcp_urls_and_instructions(client, user, settings):
    settings.SITE_URL = "https://music.example.com"
    client.force_login(user)
    body = _text(client.get(reverse("assistants")))
    assert 'value="https://music.example.com/api/schema/"' in body
    assert 'value="https://music.example.com/mcp"' in body
    assert "claude mcp add --transport http listening-history https://music.example.com/mcp" in body
    assert "history_taste_summary for broad questions" in body
    assert "What did I listen to most in the last 90 days?" in body
    assert 'src="/static/js/copy.js"' in body


def test_only_the_viewers_tokens_are_listed_and_revocable(client, user, other_user):
    mine, _ = create_token(user=user, name="mine")
    theirs, their_value = create_token(user=other_user, name="bobs laptop")
    client.force_login(user)
    body = _text(client.get(reverse("assistants")))
    assert "<td>mine</td>" in body and "bobs laptop" not in body
    response = client.post(reverse("revoke_token", args=[theirs.pk]), follow=True)
    assert "No such active token." in _text(response)
    assert authenticate_token(their_value) is not None
    response = client.post(reverse("revoke_token", args=[mine.pk]), follow=True)
    assert "Token revoked" in _text(response)
    mine.refresh_from_db()
    assert mine.revoked_at is not None
    assert 'id="no-tokens"' in _text(client.get(reverse("assistants")))


@pytest.fixture
def claude(user, other_user):
    app = Client.objects.create(client_id="claude-abc", kind="registered", name="Claude")
    later = timezone.now() + timedelta(hours=1)
    for owner in (user, other_user):
        access = AccessToken.objects.create(
            digest=f"a-{owner.pk}", client=app, user=owner, resource="r", expires_at=later
        )
        RefreshToken.objects.create(
            digest=f"r-{owner.pk}",
            client=app,
            user=owner,
            resource="r",
            expires_at=later + timedelta(days=30),
            access_token=access,
        )
    return app


def test_authorised_apps_are_listed_and_revoked_for_the_viewer_only(
    client, user, other_user, claude
):
    client.force_login(user)
    body = _text(client.get(reverse("assistants")))
    assert "<td>Claude</td>" in body
    response = client.post(reverse("revoke_client", args=[claude.pk]), follow=True)
    assert "Access revoked" in _text(response)
    assert not AccessToken.objects.filter(user=user, revoked_at__isnull=True).exists()
    assert not RefreshToken.objects.filter(user=user, revoked_at__isnull=True).exists()
    assert AccessToken.objects.filter(user=other_user, revoked_at__isnull=True).count() == 1
    assert "<td>Claude</td>" not in _text(client.get(reverse("assistants")))


@pytest.mark.parametrize("name", ["revoke_token", "revoke_client"])
def test_revocation_is_post_only_with_csrf(user, name):
    token, value = create_token(user=user, name="t")
    http = HttpClient(enforce_csrf_checks=True)
    http.force_login(user)
    assert http.get(reverse(name, args=[token.pk])).status_code == 405
    assert http.post(reverse(name, args=[token.pk])).status_code == 403
    assert authenticate_token(value) is not None


def test_creating_a_token_needs_csrf(user):
    http = HttpClient(enforce_csrf_checks=True)
    http.force_login(user)
    assert http.post(reverse("assistants"), {"name": "x"}).status_code == 403
    assert not ApiToken.objects.exists()
