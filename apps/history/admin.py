from django.contrib import admin
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.utils.functional import cached_property

from apps.history.models import HourTotal, JobRun, LogEvent, Play, SyncCheckpoint, TrackTotal


class BoundedCountPaginator(Paginator):
    """Counts at most MAX_COUNT rows, so a changelist over millions of plays never runs a full
    COUNT(*). Past the bound the admin shows MAX_COUNT and its pages; filters narrow further."""

    MAX_COUNT = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.MAX_COUNT].count()  # type: ignore[attr-defined]


@admin.register(Play)
class PlayAdmin(admin.ModelAdmin):
    list_display = ["played_at", "user", "track", "ms_played", "source", "skipped", "platform"]
    list_filter = ["source", "skipped", "track__kind"]
    search_fields = ["user__username", "track__name", "track__uri"]
    list_select_related = ["user", "track"]
    raw_id_fields = ["user", "track"]
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
    readonly_fields = ["type", "task_id", "started_at", "finished_at", "counts", "error"]
    paginator = BoundedCountPaginator
    show_full_result_count = False


@admin.register(LogEvent)
class LogEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "level_name", "logger", "message", "user", "request_id"]
    list_filter = ["level", "logger", "created_at"]
    search_fields = ["message", "logger", "request_id", "user__username"]
    list_select_related = ["user"]
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

    @admin.display(description="level", ordering="level")
    def level_name(self, obj: LogEvent) -> str:
        return obj.level_name


@admin.register(TrackTotal, HourTotal)
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
