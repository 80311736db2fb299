from django.contrib import admin

from apps.imports.models import ImportJob


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "user",
        "original_name",
        "status",
        "progress_pct",
        "records_seen",
        "plays_added",
        "duplicates",
        "created_at",
    ]
    list_filter = ["status", "created_at"]
    search_fields = ["user__username", "original_name", "sha256", "error"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = [
        "original_name",
        "size",
        "sha256",
        "status",
        "formats",
        "ignored_files",
        "records_total",
        "records_processed",
        "records_seen",
        "plays_added",
        "duplicates",
        "skipped",
        "earliest_play",
        "latest_play",
        "error",
        "attempts",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
    ]
