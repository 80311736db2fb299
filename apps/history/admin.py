import logging
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from apps.history import services
from apps.history.models import (
    ArtistMonthTotal,
    ArtistYearTotal,
    DayTotal,
    HourTotal,
    JobRun,
    LogEvent,
    Play,
    SyncCheckpoint,
    TrackTotal,
)
from apps.music.models import Track

User = get_user_model()

LOG_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


class BoundedCountPaginator(Paginator):
    """Counts at most MAX_COUNT rows, so a changelist over millions of plays never runs a full
    COUNT(*). Past the bound the admin shows "MAX_COUNT+" (templates/admin/pagination.html) and
    MAX_COUNT rows of pages; filters narrow further."""

    MAX_COUNT = 10_000

    @cached_property
    def _counted(self) -> int:
        return self.object_list[: self.MAX_COUNT + 1].count()  # type: ignore[attr-defined]

    @cached_property
    def count(self) -> int:
        return min(self._counted, self.MAX_COUNT)

    @property
    def capped(self) -> bool:
        """Whether there are more rows than the count says."""
        return self._counted > self.MAX_COUNT


@admin.register(Play)
class PlayAdmin(admin.ModelAdmin):
    list_display = ["played_at", "user", "track", "ms_played", "source", "skipped", "platform"]
    list_filter = ["source", "skipped", "track__kind"]
    search_fields = ["user__username", "track__name", "track__uri", "track__primary_artist__name"]
    search_help_text = "A user name, a track or artist name, or a track's Spotify URI."
    list_select_related = ["user", "track"]
    raw_id_fields = ["user", "track"]
    # The copies of the track's columns follow the track (apps.history.copies): not shown.
    exclude = ["artist", "album", "kind", "duration_ms"]
    readonly_fields = [
        "user",
        "track",
        "played_at",
        "ms_played",
        "source",
        "reason_start",
        "reason_end",
        "skipped",
        "shuffle",
        "offline",
        "platform",
        "conn_country",
        "ip_addr",
        "user_agent",
        "export_username",
        "created_at",
    ]
    ordering = ["-played_at"]
    paginator = BoundedCountPaginator
    show_full_result_count = False

    # At millions of rows there is no index on played_at alone: across all users the list reads
    # newest stored first (the primary key), and one user's plays by played_at through the
    # (user, played_at) index. A column header click still sorts as asked.
    USER_PARAMS = ("user", "user__id__exact", "user_id")
    SEARCH_MATCH_CAP = 1000

    def get_ordering(self, request: HttpRequest) -> list[str]:
        if any(request.GET.get(param) for param in self.USER_PARAMS):
            return ["-played_at"]
        return ["-id"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Search users by name, and tracks by name, URI or artist name, in their own (small)
        tables, then take the plays of those through the user and track indexes, instead of a
        LIKE over every play joined to both."""
        term = search_term.strip()
        if not term:
            return queryset, False
        cap = self.SEARCH_MATCH_CAP
        users = list(
            User.objects.filter(username__icontains=term).values_list("pk", flat=True)[:cap]
        )
        tracks = list(
            Track.objects.filter(
                Q(name__icontains=term) | Q(uri=term) | Q(primary_artist__name__icontains=term)
            ).values_list("pk", flat=True)[:cap]
        )
        return queryset.filter(Q(user_id__in=users) | Q(track_id__in=tracks)), False


@admin.register(SyncCheckpoint)
class SyncCheckpointAdmin(admin.ModelAdmin):
    list_display = [
        "user",
        "last_poll_at",
        "newest_played_at",
        "earliest_played_at",
        "initial_sync_stop_reason",
        "consecutive_errors",
    ]
    list_filter = ["initial_sync_stop_reason"]
    search_fields = ["user__username", "last_error"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = [
        "initial_sync_started_at",
        "initial_sync_completed_at",
        "initial_sync_stop_reason",
        "earliest_played_at",
        "newest_played_at",
        "last_poll_at",
        "last_success_at",
        "last_error",
    ]


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "status", "user", "started_at", "finished_at", "counts"]
    list_filter = ["type", "status", "started_at"]
    search_fields = ["user__username", "error", "task_id"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = [
        "type",
        "task_id",
        "started_at",
        "finished_at",
        "counts",
        "error",
        "log_lines",
    ]
    paginator = BoundedCountPaginator
    show_full_result_count = False

    @admin.display(description="log lines")
    def log_lines(self, obj: JobRun) -> str:
        url = reverse("admin:history_logevent_changelist") + f"?job={obj.pk}"
        return format_html('<a href="{}">Log lines of this run</a>', url)


class LevelFilter(admin.SimpleListFilter):
    title = "level"
    parameter_name = "level"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(level), logging.getLevelName(level)) for level in LOG_LEVELS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in {str(level) for level in LOG_LEVELS}:
            return queryset.filter(level=int(self.value()))  # type: ignore[arg-type]
        return queryset


class JobFilter(admin.SimpleListFilter):
    """By kind of job, or one job run by id (the JobRun page links here with `?job=<id>`)."""

    title = "job"
    parameter_name = "job"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("none", "No job"), *JobRun.Type.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "none":
            return queryset.filter(job_run__isnull=True)
        if value in JobRun.Type.values:
            return queryset.filter(job_run__type=value)
        if value and value.isdigit():
            return queryset.filter(job_run_id=int(value))
        return queryset


class PurgeForm(forms.Form):
    days = forms.IntegerField(
        min_value=0, label="Delete log lines older than this many days", initial=30
    )


@admin.register(LogEvent)
class LogEventAdmin(admin.ModelAdmin):
    """The log viewer: filters by level, logger, user, job and time; search on the message; and a
    purge of lines older than N days (the retention task does the same every hour)."""

    list_display = ["created_at", "level_name", "logger", "short_message", "user", "job_link"]
    list_filter = [
        LevelFilter,
        "logger",
        ("user", admin.RelatedOnlyFieldListFilter),
        JobFilter,
        "created_at",
    ]
    search_fields = ["message", "request_id"]
    list_select_related = ["user", "job_run"]
    raw_id_fields = ["user", "job_run"]
    readonly_fields = [
        "created_at",
        "level",
        "logger",
        "message",
        "request_id",
        "user",
        "job_run",
        "extra",
    ]
    paginator = BoundedCountPaginator
    show_full_result_count = False
    change_list_template = "admin/history/logevent/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="level", ordering="level")
    def level_name(self, obj: LogEvent) -> str:
        return obj.level_name

    @admin.display(description="message")
    def short_message(self, obj: LogEvent) -> str:
        first_line = obj.message.split("\n", 1)[0]
        return first_line if len(first_line) <= 160 else first_line[:159] + "…"

    @admin.display(description="job", ordering="job_run")
    def job_link(self, obj: LogEvent) -> str:
        if obj.job_run_id is None:
            return "-"
        url = reverse("admin:history_jobrun_change", args=[obj.job_run_id])
        return format_html('<a href="{}">{}</a>', url, obj.job_run)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {**(extra_context or {}), "can_purge": self.has_delete_permission(request)}
        return super().changelist_view(request, context)

    def get_urls(self) -> list[URLPattern]:
        purge = self.admin_site.admin_view(self.purge_view)
        return [
            path("purge/", purge, name="history_logevent_purge"),
            *super().get_urls(),
        ]

    def purge_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_delete_permission(request):
            raise PermissionDenied
        form = PurgeForm(request.POST or None, initial={"days": settings.LOG_RETENTION_DAYS})
        if request.method == "POST" and form.is_valid():
            days = form.cleaned_data["days"]
            deleted = services.purge_log_events(older_than_days=days)
            self.message_user(
                request, f"Deleted {deleted} log line{pluralize(deleted)} older than {days} days."
            )
            return redirect("admin:history_logevent_changelist")
        days = form.cleaned_data["days"] if form.is_bound and form.is_valid() else None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Purge old log lines",
            "form": form,
            "retention_days": settings.LOG_RETENTION_DAYS,
            "total": LogEvent.objects.count(),
            "days": days,
        }
        return TemplateResponse(request, "admin/history/logevent/purge.html", context)


@admin.register(TrackTotal, HourTotal, DayTotal)
class PlayTotalAdmin(admin.ModelAdmin):
    """The pre-aggregated play totals, read-only: PostgreSQL triggers keep them exact."""

    list_display = ["__str__", "user", "min_ms", "plays"]
    list_filter = ["min_ms"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    paginator = BoundedCountPaginator
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ArtistMonthTotal, ArtistYearTotal)
class ArtistPeriodTotalAdmin(PlayTotalAdmin):
    list_display = ["__str__", "user", "artist", "min_ms", "music_plays"]
    list_select_related = ["user", "artist"]
    raw_id_fields = ["user", "artist"]
