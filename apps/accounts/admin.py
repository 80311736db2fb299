from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from apps.accounts.models import SpotifyAccount, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "email", "timezone", "is_staff", "is_active", "date_joined"]
    list_filter = ["is_staff", "is_active", "timezone"]
    search_fields = ["username", "email", "first_name", "last_name"]
    fieldsets = (*BaseUserAdmin.fieldsets, ("Listening", {"fields": ["timezone"]}))  # type: ignore[misc]


@admin.register(SpotifyAccount)
class SpotifyAccountAdmin(admin.ModelAdmin):
    # Token fields are never listed: `fields` names everything the form may show.
    list_display = [
        "user",
        "display_name",
        "spotify_id",
        "status",
        "paused",
        "authorized_at",
        "refresh_expires_at",
    ]
    list_filter = ["status", "paused"]
    search_fields = ["user__username", "spotify_id", "account_id", "display_name"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    fields = [
        "user",
        "spotify_id",
        "account_id",
        "display_name",
        "scopes",
        "status",
        "status_reason",
        "paused",
        "authorized_at",
        "refresh_expires_at",
        "access_expires_at",
        "expiry_warned_days",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "spotify_id",
        "account_id",
        "scopes",
        "authorized_at",
        "refresh_expires_at",
        "access_expires_at",
        "expiry_warned_days",
        "created_at",
        "updated_at",
    ]
