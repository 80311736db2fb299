from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from apps.accounts.crypto import EncryptedTextField

# Spotify refresh tokens stop working this long after the user authorized; refreshing does not
# extend them.
REFRESH_TOKEN_LIFETIME = timedelta(days=182)
EXPIRY_WARNING_DAYS = (30, 7)


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone, such as Europe/Paris.")


class User(AbstractUser):
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="IANA time zone; day boundaries and heatmaps are computed in it.",
    )

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class SpotifyAccount(models.Model):
    """The one Spotify connection of a user, and the one place its tokens are kept."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        NEEDS_REAUTH = "needs_reauth", "Needs reconnecting"
        REVOKED = "revoked", "Revoked"

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="spotify")
    spotify_id = models.CharField(max_length=255, unique=True)
    account_id = models.CharField(max_length=255, blank=True)
    display_name = models.CharField(max_length=255, blank=True)
    scopes = models.CharField(max_length=500, blank=True)

    refresh_token = EncryptedTextField(blank=True, null=True)
    access_token = EncryptedTextField(blank=True, null=True)
    access_expires_at = models.DateTimeField(null=True, blank=True)
    authorized_at = models.DateTimeField(default=timezone.now)
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    # The tightest expiry warning already given (30, then 7 days); reset on reconnect.
    expiry_warned_days = models.PositiveSmallIntegerField(null=True, blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.TextField(blank=True)
    paused = models.BooleanField(default=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "paused"])]

    def __str__(self) -> str:
        return f"{self.display_name or self.spotify_id} ({self.user})"

    @property
    def needs_reauth(self) -> bool:
        return self.status == self.Status.NEEDS_REAUTH

    @property
    def is_collecting(self) -> bool:
        return self.status == self.Status.ACTIVE and not self.paused

    def days_until_refresh_expiry(self, now: datetime | None = None) -> int | None:
        if self.refresh_expires_at is None:
            return None
        return (self.refresh_expires_at - (now or timezone.now())).days

    def mark_needs_reauth(self, reason: str) -> None:
        self.status = self.Status.NEEDS_REAUTH
        self.status_reason = reason
        self.access_token = None
        self.save(update_fields=["status", "status_reason", "access_token", "updated_at"])
