"""The collection side of the user and Spotify account admin pages: the pause, resume, poll now
and initial sync actions, the state columns, the re-authorization filter and the app-wide pause
banner."""

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from apps.accounts import services, spotify
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


class CollectionColumnsMixin:
    """Columns for a changelist of users or of Spotify accounts, and the pause banner."""

    @staticmethod
    def _account(obj: User | SpotifyAccount) -> SpotifyAccount | None:
        return obj if isinstance(obj, SpotifyAccount) else getattr(obj, "spotify", None)

    @staticmethod
    def _user(obj: User | SpotifyAccount) -> User:
        return obj.user if isinstance(obj, SpotifyAccount) else obj

    @admin.display(description="Spotify")
    def spotify_status(self, obj: User | SpotifyAccount) -> str:
        account = self._account(obj)
        if account is None:
            return "not connected"
        if account.refresh_token is None:
            return "disconnected"
        return account.get_status_display()

    @admin.display(description="paused", boolean=True)
    def collection_paused(self, obj: User | SpotifyAccount) -> bool | None:
        account = self._account(obj)
        return account.paused if account else None

    @admin.display(description="last poll")
    def last_poll(self, obj: User | SpotifyAccount) -> Any:
        checkpoint = getattr(self._user(obj), "sync_checkpoint", None)
        return checkpoint.last_poll_at if checkpoint else None

    @admin.display(description="plays")
    def plays(self, obj: User | SpotifyAccount) -> int:
        return Play.objects.for_user(self._user(obj)).count()

    @admin.display(description="token expires in")
    def token_expires_in(self, obj: User | SpotifyAccount) -> str:
        return _expiry_days(self._account(obj))

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        _warn_about_pause(request)
        return super().changelist_view(request, extra_context)  # type: ignore[misc]
