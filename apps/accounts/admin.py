from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from apps.accounts import analytics, services, spotify
from apps.accounts.models import SpotifyAccount, User
from apps.history import collection
from apps.history.models import Play

# --- Collection actions, shared by the user and Spotify account pages -------------------------


def _for_each(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    users: Iterable[User],
    service: Callable[..., Any],
    done: str,
) -> None:
    """Call a service for each user; report how many it did and each refusal, word for word."""
    count, refusals = 0, []
    for user in users:
        try:
            service(user=user)
        except spotify.SpotifyError as exc:
            refusals.append(f"{user.username}: {exc}")
        else:
            count += 1
    if count:
        model_admin.message_user(request, done.format(count=count), messages.SUCCESS)
    for refusal in refusals:
        model_admin.message_user(request, refusal, messages.WARNING)


def _users(queryset: QuerySet) -> Iterable[User]:
    if queryset.model is User:
        return list(queryset)
    return [account.user for account in queryset.select_related("user")]


@admin.action(description="Pause collection")
def pause_collection(model_admin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    _for_each(model_admin, request, _users(qs), services.pause_collection, "Paused {count}.")


@admin.action(description="Resume collection")
def resume_collection(model_admin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    _for_each(
        model_admin,
        request,
        _users(qs),
        services.resume_collection,
        "Resumed {count}; polls queued.",
    )


@admin.action(description="Poll now")
def poll_now(model_admin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    _for_each(model_admin, request, _users(qs), collection.request_poll, "Queued {count} polls.")


@admin.action(description="Run the initial sync")
def run_initial_sync(model_admin: admin.ModelAdmin, request: HttpRequest, qs: QuerySet) -> None:
    _for_each(
        model_admin,
        request,
        _users(qs),
        collection.request_initial_sync,
        "Queued {count} initial syncs.",
    )


COLLECTION_ACTIONS = [pause_collection, resume_collection, poll_now, run_initial_sync]


def _expiry_days(account: SpotifyAccount | None) -> str:
    days = account.days_until_refresh_expiry() if account else None
    if days is None:
        return "-"
    if days < 0:
        return "expired"
    return f"{days} days"


def _warn_about_pause(request: HttpRequest) -> None:
    status = spotify.rate_limit_status()
    if status:
        kind = "the app's daily Spotify quota is used up" if status["quota"] else "a 429"
        until = timezone.localtime(status["until"]).strftime("%Y-%m-%d %H:%M:%S %Z")
        messages.warning(request, f"Every Spotify call is paused until {until} ({kind}).")


class NeedsReauthFilter(admin.SimpleListFilter):
    title = "re-authorization"
    parameter_name = "reauth"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("needed", "Needs reconnecting"), ("expiring", "Expires within 30 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        prefix = "spotify__" if queryset.model is User else ""
        if self.value() == "needed":
            return queryset.filter(**{f"{prefix}status": SpotifyAccount.Status.NEEDS_REAUTH})
        if self.value() == "expiring":
            horizon = timezone.now() + timedelta(days=30)
            return queryset.filter(
                **{
                    f"{prefix}status": SpotifyAccount.Status.ACTIVE,
                    f"{prefix}refresh_expires_at__lte": horizon,
                }
            )
        return queryset


@admin.register(User)
class UserAdmin(BaseUserAdmin):
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

    @admin.display(description="Spotify")
    def spotify_status(self, obj: User) -> str:
        account = getattr(obj, "spotify", None)
        if account is None:
            return "not connected"
        if account.refresh_token is None:
            return "disconnected"
        return account.get_status_display()

    @admin.display(description="paused", boolean=True)
    def collection_paused(self, obj: User) -> bool | None:
        account = getattr(obj, "spotify", None)
        return account.paused if account else None

    @admin.display(description="last poll")
    def last_poll(self, obj: User) -> Any:
        checkpoint = getattr(obj, "sync_checkpoint", None)
        return checkpoint.last_poll_at if checkpoint else None

    @admin.display(description="plays")
    def plays(self, obj: User) -> int:
        return Play.objects.for_user(obj).count()

    @admin.display(description="token expires in")
    def token_expires_in(self, obj: User) -> str:
        return _expiry_days(getattr(obj, "spotify", None))

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        _warn_about_pause(request)
        return super().changelist_view(request, extra_context)

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
class SpotifyAccountAdmin(admin.ModelAdmin):
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

    @admin.display(description="last poll")
    def last_poll(self, obj: SpotifyAccount) -> Any:
        checkpoint = getattr(obj.user, "sync_checkpoint", None)
        return checkpoint.last_poll_at if checkpoint else None

    @admin.display(description="plays")
    def plays(self, obj: SpotifyAccount) -> int:
        return Play.objects.for_user(obj.user).count()

    @admin.display(description="token expires in")
    def token_expires_in(self, obj: SpotifyAccount) -> str:
        return _expiry_days(obj)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        _warn_about_pause(request)
        return super().changelist_view(request, extra_context)
