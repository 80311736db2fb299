"""API token and OAuth-client services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django_mcpz.oauth.models import AccessToken, Client, RefreshToken

from apps.mcp import selectors, services
from apps.mcp.models import ApiToken, digest


def test_create_token_stores_only_the_digest_and_shows_the_value_once(user: Any) -> None:
    token, value = services.create_token(user=user, name="Claude Code")
    assert value.startswith("shk_") and len(value) > 40
    row = ApiToken.objects.get(pk=token.pk)
    assert row.digest == digest(value)
    assert value not in (row.digest, row.name, row.hint)
    assert row.hint == value[:8]
    assert services.authenticate_token(value) == token
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None


def test_create_token_needs_a_name(user: Any) -> None:
    with pytest.raises(services.TokenError, match="name"):
        services.create_token(user=user, name="  ")


def test_revoke_token_only_revokes_the_users_own(user: Any, other_user: Any) -> None:
    token, value = services.create_token(user=user, name="GPT")
    assert services.revoke_token(user=other_user, token_id=token.pk) is False
    assert services.authenticate_token(value) == token
    assert services.revoke_token(user=user, token_id=token.pk) is True
    assert services.authenticate_token(value) is None
    assert services.revoke_token(user=user, token_id=token.pk) is False
    assert list(selectors.user_tokens(user=user)) == []
    assert list(selectors.user_tokens(user=user, include_revoked=True)) == [token]


def test_authorized_clients_and_revoking_one(user: Any, other_user: Any) -> None:
    client = Client.objects.create(client_id="abc", kind=Client.Kind.REGISTERED, name="Claude")
    common = {"client": client, "resource": "http://testserver/mcp"}
    access, _ = AccessToken.create(lifetime=timedelta(hours=1), user=user, **common)
    RefreshToken.create(lifetime=timedelta(days=30), user=user, access_token=access, **common)
    AccessToken.create(lifetime=timedelta(hours=1), user=other_user, **common)
    listed = selectors.authorized_clients(user=user)
    assert [(c.name, c.id) for c in listed] == [("Claude", client.pk)]
    assert services.revoke_oauth_client(user=user, client_id=client.pk) == 2
    assert selectors.authorized_clients(user=user) == []
    assert [c.name for c in selectors.authorized_clients(user=other_user)] == ["Claude"]
    assert AccessToken.objects.get(pk=access.pk).revoked_at is not None
