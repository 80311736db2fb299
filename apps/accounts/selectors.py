"""Reads for the dashboard and the admin overview."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from apps.accounts import spotify
from apps.accounts.models import EXPIRY_WARNING_DAYS, SpotifyAccount, User
from apps.history.models import JobRun, Play, SyncCheckpoint
from apps.imports.models import ImportJob
from apps.music.models import Source


@dataclass(slots=True)
class CollectionStatus:
    account: SpotifyAccount | None
    checkpoint: SyncCheckpoint | None
    expiry_days: int | None
    # 30 or 7 when the refresh token expires within that many days, else None.
    expiry_warning: int | None
    recent_runs: list[JobRun]
    recent_imports: list[ImportJob]
    # The app-wide pause on Spotify calls (rate limit): {"until", "quota", "seconds_left"}.
    spotify_pause: dict[str, Any] | None

    @property
    def connected(self) -> bool:
        return self.account is not None and self.account.refresh_token is not None

    @property
    def poll_minutes(self) -> int:
        """How often a collecting account is polled, in whole minutes."""
        return math.ceil(settings.COLLECTOR_INTERVAL_SECONDS / 60)


def expiry_warning(days: int | None) -> int | None:
    """The tightest warning threshold (30, then 7 days) the remaining days fall within."""
    if days is None:
        return None
    within = [limit for limit in EXPIRY_WARNING_DAYS if days <= limit]
    return min(within) if within else None


def collection_status(*, user: User, recent: int = 5) -> CollectionStatus:
    account = SpotifyAccount.objects.filter(user=user).first()
    checkpoint = SyncCheckpoint.objects.filter(user=user).first()
    days = account.days_until_refresh_expiry() if account else None
    return CollectionStatus(
        account=account,
        checkpoint=checkpoint,
        expiry_days=days,
        expiry_warning=expiry_warning(days) if account and not account.needs_reauth else None,
        recent_runs=list(JobRun.objects.filter(user=user).order_by("-started_at")[:recent]),
        recent_imports=list(ImportJob.objects.filter(user=user).order_by("-created_at")[:recent]),
        spotify_pause=spotify.rate_limit_status(),
    )


@dataclass(slots=True)
class Overview:
    users_total: int
    users_by_status: list[tuple[str, int]]
    plays_last_24h: list[tuple[str, int]]
    running_runs: list[JobRun]
    failed_runs: list[JobRun]
    running_imports: list[ImportJob]
    failed_imports: list[ImportJob]
    needs_reauth: list[SpotifyAccount]
    expiring: list[SpotifyAccount]
    spotify_pause: dict[str, Any] | None


def admin_overview(*, limit: int = 10) -> Overview:
    """What an operator checks first: who is collecting, what arrived, what is running or broke."""
    now = timezone.now()
    since = now - timedelta(hours=24)
    accounts = SpotifyAccount.objects.aggregate(
        active=Count("id", filter=Q(status=SpotifyAccount.Status.ACTIVE, paused=False)),
        paused=Count("id", filter=Q(status=SpotifyAccount.Status.ACTIVE, paused=True)),
        needs_reauth=Count("id", filter=Q(status=SpotifyAccount.Status.NEEDS_REAUTH)),
        revoked=Count("id", filter=Q(status=SpotifyAccount.Status.REVOKED)),
        total=Count("id"),
    )
    users_total = User.objects.count()
    recent_plays = dict(
        Play.objects.filter(created_at__gte=since)
        .values_list("source")
        .annotate(n=Count("id"))
        .values_list("source", "n")
    )
    soon = now + timedelta(days=max(EXPIRY_WARNING_DAYS))
    related = ["user"]
    return Overview(
        users_total=users_total,
        users_by_status=[
            ("Collecting", accounts["active"]),
            ("Paused", accounts["paused"]),
            ("Needs reconnecting", accounts["needs_reauth"]),
            ("Revoked", accounts["revoked"]),
            ("Not connected to Spotify", users_total - accounts["total"]),
        ],
        plays_last_24h=[(label, recent_plays.get(value, 0)) for value, label in Source.choices],
        running_runs=list(
            JobRun.objects.filter(status=JobRun.Status.RUNNING)
            .select_related(*related)
            .order_by("-started_at")[:limit]
        ),
        failed_runs=list(
            JobRun.objects.filter(status=JobRun.Status.FAILED, started_at__gte=since)
            .select_related(*related)
            .order_by("-started_at")[:limit]
        ),
        running_imports=list(
            ImportJob.objects.filter(
                status__in=[ImportJob.Status.PENDING, ImportJob.Status.RUNNING]
            )
            .select_related(*related)
            .order_by("-created_at")[:limit]
        ),
        failed_imports=list(
            ImportJob.objects.filter(status=ImportJob.Status.FAILED, created_at__gte=since)
            .select_related(*related)
            .order_by("-created_at")[:limit]
        ),
        needs_reauth=list(
            SpotifyAccount.objects.filter(status=SpotifyAccount.Status.NEEDS_REAUTH)
            .select_related(*related)
            .order_by("user__username")[:limit]
        ),
        expiring=list(
            SpotifyAccount.objects.filter(
                status=SpotifyAccount.Status.ACTIVE, refresh_expires_at__lte=soon
            )
            .select_related(*related)
            .order_by("refresh_expires_at")[:limit]
        ),
        spotify_pause=spotify.rate_limit_status(),
    )
