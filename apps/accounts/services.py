"""Workflows on a user's Spotify connection: connect, reconnect, disconnect, pause, resume."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import EXPIRY_WARNING_DAYS, REFRESH_TOKEN_LIFETIME, SpotifyAccount, User
from apps.accounts.spotify import SpotifyError, SpotifyNotConnected, profile_id

logger = logging.getLogger(__name__)


@transaction.atomic
def connect_spotify(
    *,
    user: User,
    profile: dict[str, Any],
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None = None,
    scopes: str = "",
) -> SpotifyAccount:
    """Store (or replace) the user's Spotify tokens, encrypted, after they authorized the app.

    A new authorization restarts the refresh token's 6-month life and clears `needs_reauth`.
    The initial sync is queued on commit when the connection is new or was broken; an ordinary
    sign-in queues a poll instead.
    """
    from apps.history import collection

    spotify_id = profile_id(profile)
    taken = SpotifyAccount.objects.filter(spotify_id=spotify_id).exclude(user=user).first()
    if taken is not None:
        raise SpotifyError(
            "This Spotify account is already connected to another user here. Sign in as that "
            "user, or disconnect Spotify there first."
        )
    now = timezone.now()
    account = SpotifyAccount.objects.select_for_update().filter(user=user).first()
    was_collecting = (
        account is not None
        and account.refresh_token is not None
        and (account.status == SpotifyAccount.Status.ACTIVE)
    )
    if account is None:
        account = SpotifyAccount(user=user)
    account.spotify_id = spotify_id
    account.account_id = str(profile.get("account_id") or "")
    account.display_name = str(profile.get("display_name") or "")[:255]
    if scopes:
        account.scopes = scopes[:500]
    account.access_token = access_token
    if refresh_token:
        account.refresh_token = refresh_token
    account.access_expires_at = expires_at or now + timedelta(seconds=3600)
    account.authorized_at = now
    account.refresh_expires_at = now + REFRESH_TOKEN_LIFETIME
    account.expiry_warned_days = None
    account.status = SpotifyAccount.Status.ACTIVE
    account.status_reason = ""
    account.save()
    collection.ensure_checkpoint(user=user)
    logger.info(
        "Spotify %s for %s",
        "sign-in" if was_collecting else "connected",
        user.username,
        extra={"user": user.pk, "store": True},
    )
    if was_collecting:
        collection.request_poll(user=user)
    elif settings.INITIAL_SYNC_ENABLED:
        collection.request_initial_sync(user=user)
    else:
        collection.request_poll(user=user)
    return account


def _account(user: User) -> SpotifyAccount:
    account = SpotifyAccount.objects.filter(user=user).first()
    if account is None:
        raise SpotifyNotConnected("Spotify is not connected; connect it first.")
    return account


def pause_collection(*, user: User) -> SpotifyAccount:
    """Stop polling and syncing the user until `resume_collection`."""
    account = _account(user)
    if not account.paused:
        account.paused = True
        account.save(update_fields=["paused", "updated_at"])
        logger.info(
            "Collection paused for %s", user.username, extra={"user": user.pk, "store": True}
        )
    return account


def resume_collection(*, user: User) -> SpotifyAccount:
    """Poll the user again; the next poll is queued at once."""
    from apps.history import collection

    account = _account(user)
    if account.paused:
        account.paused = False
        account.save(update_fields=["paused", "updated_at"])
        logger.info(
            "Collection resumed for %s", user.username, extra={"user": user.pk, "store": True}
        )
    if account.is_collecting and account.refresh_token is not None:
        collection.request_poll(user=user)
    return account


@transaction.atomic
def disconnect_spotify(*, user: User) -> None:
    """Delete the user's Spotify tokens and stop collecting. Their plays stay; signing in with
    Spotify again reconnects."""
    account = SpotifyAccount.objects.select_for_update().filter(user=user).first()
    if account is None:
        return
    account.access_token = None
    account.refresh_token = None
    account.access_expires_at = None
    account.refresh_expires_at = None
    account.status = SpotifyAccount.Status.REVOKED
    account.status_reason = "Disconnected. Connect Spotify again to resume collecting plays."
    account.save()
    logger.info(
        "Spotify disconnected for %s", user.username, extra={"user": user.pk, "store": True}
    )


def warn_expiring_tokens(*, now: datetime | None = None) -> int:
    """Mark the accounts whose refresh token expires within 30, then 7 days, and log one event
    for each mark, so the dashboard and the admin can ask the user to reconnect in time."""
    now = now or timezone.now()
    horizon = now + timedelta(days=max(EXPIRY_WARNING_DAYS))
    warned = 0
    accounts = SpotifyAccount.objects.filter(
        status=SpotifyAccount.Status.ACTIVE,
        refresh_token__isnull=False,
        refresh_expires_at__isnull=False,
        refresh_expires_at__lte=horizon,
    ).select_related("user")
    for account in accounts:
        days = account.days_until_refresh_expiry(now)
        assert days is not None
        threshold = min(d for d in EXPIRY_WARNING_DAYS if days <= d)
        if account.expiry_warned_days is not None and account.expiry_warned_days <= threshold:
            continue
        account.expiry_warned_days = threshold
        account.save(update_fields=["expiry_warned_days", "updated_at"])
        warned += 1
        logger.warning(
            "The Spotify authorization of %s expires in %d days (%s); reconnect Spotify before "
            "then to keep collecting plays.",
            account.user.username,
            max(days, 0),
            account.refresh_expires_at.date() if account.refresh_expires_at else "?",
            extra={"user": account.user_id, "store": True, "warning_days": threshold},
        )
    return warned
