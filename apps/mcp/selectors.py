"""Reads for the token pages: the user's API tokens and the assistants they authorised."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import msgspec
from django.db.models import Max, Min, QuerySet
from django.utils import timezone
from django_mcpz.oauth.models import AccessToken, Client, RefreshToken

from apps.mcp.models import ApiToken

if TYPE_CHECKING:
    from apps.accounts.models import User


def user_tokens(*, user: User, include_revoked: bool = False) -> QuerySet[ApiToken]:
    """The user's API tokens, newest first."""
    tokens = ApiToken.objects.for_user(user)
    return tokens if include_revoked else tokens.active()


class AuthorizedClient(msgspec.Struct, kw_only=True):
    """An OAuth client (ChatGPT app, Claude connector…) holding a live grant from the user."""

    id: int
    name: str
    client_id: str
    first_authorized_at: datetime
    last_token_at: datetime


def authorized_clients(*, user: User) -> list[AuthorizedClient]:
    """The OAuth clients that still hold an unrevoked, unexpired token of the user."""
    now = timezone.now()
    live: dict[int, tuple[datetime, datetime]] = {}
    for model in (AccessToken, RefreshToken):
        rows = (
            model.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=now)
            .values("client_id")
            .annotate(first=Min("created_at"), last=Max("created_at"))
        )
        for row in rows:
            first, last = live.get(row["client_id"], (row["first"], row["last"]))
            live[row["client_id"]] = (min(first, row["first"]), max(last, row["last"]))
    clients = Client.objects.filter(pk__in=live).order_by("name", "pk")
    return [
        AuthorizedClient(
            id=client.pk,
            name=client.name or client.client_id,
            client_id=client.client_id,
            first_authorized_at=live[client.pk][0],
            last_token_at=live[client.pk][1],
        )
        for client in clients
    ]
