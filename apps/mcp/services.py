"""Token workflows: create and revoke API tokens, and revoke an assistant's OAuth access."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from django_mcpz.oauth.models import AccessToken, RefreshToken

from apps.mcp.models import ApiToken, digest, generate_value

if TYPE_CHECKING:
    from apps.accounts.models import User


class TokenError(ValueError):
    """A token request that can't be done; the message says why."""


def create_token(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token for the user; returns the row and the value, which is shown only now."""
    name = name.strip()
    if not name:
        raise TokenError("Give the token a name, such as the assistant that will use it.")
    if len(name) > 100:
        raise TokenError("Token names are at most 100 characters.")
    value = generate_value()
    token = ApiToken.objects.create(user=user, name=name, digest=digest(value), hint=value[:8])
    return token, value


def revoke_token(*, user: User, token_id: int) -> bool:
    """Revoke one of the user's tokens; False when it isn't theirs or was already revoked."""
    updated = (
        ApiToken.objects.for_user(user)
        .active()
        .filter(pk=token_id)
        .update(revoked_at=timezone.now())
    )
    return updated > 0


def authenticate_token(value: str) -> ApiToken | None:
    """The active token with this value, its use recorded; None when unknown or revoked."""
    token = (
        ApiToken.objects.active()
        .select_related("user")
        .filter(digest=digest(value), user__is_active=True)
        .first()
    )
    if token is not None:
        token.record_use()
    return token


@transaction.atomic
def revoke_oauth_client(*, user: User, client_id: int) -> int:
    """Revoke every access and refresh token the user granted to one OAuth client (an
    assistant connected through MCP OAuth); returns how many tokens were revoked."""
    now = timezone.now()
    revoked = 0
    for model in (RefreshToken, AccessToken):
        revoked += model.objects.filter(
            user=user, client_id=client_id, revoked_at__isnull=True
        ).update(revoked_at=now)
    return revoked
