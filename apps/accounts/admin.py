from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from apps.accounts.models import SpotifyAccount, User
from apps.accounts.spotify_admin import (
    COLLECTION_ACTIONS,
    CollectionColumnsMixin,
    NeedsReauthFilter,
)


@admin.register(User)
class UserAdmin(CollectionColumnsMixin, BaseUserAdmin):
    list_display = [
        "username",
        "email",
        "timezone",
        "is_staff",
        "is_active",
        "date_joined",
        "spotify_status",
        "collection_paused",
        "last_poll",
        "plays",
        "token_expires_in",
    ]
    list_filter = ["is_staff", "is_active", "timezone", "spotify__paused", NeedsReauthFilter]
    search_fields = ["username", "email", "first_name", "last_name"]
    list_select_related = ["spotify", "sync_checkpoint"]
    actions = COLLECTION_ACTIONS
    fieldsets = (*BaseUserAdmin.fieldsets, ("Listening", {"fields": ["timezone"]}))  # type: ignore[misc]


@admin.register(SpotifyAccount)
class SpotifyAccountAdmin(CollectionColumnsMixin, admin.ModelAdmin):
    # Token fields are never listed: `fields` names everything the form may show.
    list_display = [
        "user",
        "display_name",
        "spotify_id",
        "status",
        "paused",
        "last_poll",
        "plays",
        "authorized_at",
        "refresh_expires_at",
        "token_expires_in",
    ]
    list_filter = ["status", "paused", NeedsReauthFilter]
    search_fields = ["user__username", "spotify_id", "account_id", "display_name"]
    list_select_related = ["user", "user__sync_checkpoint"]
    raw_id_fields = ["user"]
    actions = COLLECTION_ACTIONS
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
        "token_expires_in",
        "access_expires_at",
        "expiry_warned_days",
        "last_poll",
        "plays",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "spotify_id",
        "account_id",
        "scopes",
        "authorized_at",
        "refresh_expires_at",
        "token_expires_in",
        "access_expires_at",
        "expiry_warned_days",
        "last_poll",
        "plays",
        "created_at",
        "updated_at",
    ]
