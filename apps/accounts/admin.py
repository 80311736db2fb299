from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from apps.accounts import analytics
from apps.accounts.models import SpotifyAccount, User
from apps.accounts.spotify_admin import (
    COLLECTION_ACTIONS,
    CollectionColumnsMixin,
    NeedsReauthFilter,
)
from apps.history import services as history_services


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

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "timezone" in form.changed_data:
            history_services.request_best_days(user_id=obj.pk)

    # The per-user analytics page, linked from the change page's object tools
    # (templates/admin/accounts/user/change_form.html).
    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.analytics_view)
        return [
            path("<int:user_id>/analytics/", view, name="accounts_user_analytics"),
            *super().get_urls(),
        ]

    def analytics_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        subject = get_object_or_404(User, pk=user_id)
        context = {
            **self.admin_site.each_context(request),
            **analytics.page_context(request.GET, user=subject),
            "opts": self.opts,
            "original": subject,
            "title": f"Listening analytics of {subject.username}",
        }
        return TemplateResponse(request, "admin/accounts/user/analytics.html", context)


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
