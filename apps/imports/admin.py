from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

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
        "progress",
        "skipped_table",
        "formats_list",
        "ignored_files_list",
    ]
    # The change page of an existing job, grouped so its state reads at a glance.
    change_fieldsets = (
        (None, {"fields": ["user", "original_name", "file", "size", "sha256"]}),
        ("Progress", {"fields": ["status", "progress", "error", "attempts"]}),
        (
            "Result",
            {
                "fields": [
                    "formats_list",
                    "records_seen",
                    "plays_added",
                    "duplicates",
                    "skipped_table",
                    "earliest_play",
                    "latest_play",
                    "ignored_files_list",
                ]
            },
        ),
        ("Times", {"fields": ["created_at", "started_at", "heartbeat_at", "finished_at"]}),
    )

    class Media:
        css = {"all": ["css/admin.css"]}

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "user", "file"] if obj is not None else fields

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None:
            return self.change_fieldsets
        return super().get_fieldsets(request, obj)

    @admin.display(description="progress")
    def progress(self, obj: ImportJob) -> SafeString:
        total = f"{obj.records_total:,}" if obj.records_total else "an unknown number of"
        return format_html(
            '<progress class="import-progress" max="100" value="{}"></progress> {}% · {} of {} '
            "records processed",
            obj.progress_pct,
            obj.progress_pct,
            f"{obj.records_processed:,}",
            total,
        )

    @admin.display(description="skipped records")
    def skipped_table(self, obj: ImportJob) -> SafeString | str:
        if not obj.skipped:
            return "None"
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td class="num">{}</td></tr>',
            (
                (reason.replace("_", " "), f"{count:,}")
                for reason, count in sorted(obj.skipped.items(), key=lambda kv: (-kv[1], kv[0]))
            ),
        )
        return format_html(
            '<table class="skip-table"><thead><tr><th>Reason</th><th>Records</th></tr></thead>'
            '<tbody>{}</tbody><tfoot><tr><th>Total</th><th class="num">{}</th></tr></tfoot>'
            "</table>",
            rows,
            f"{obj.skipped_total:,}",
        )

    @admin.display(description="formats found")
    def formats_list(self, obj: ImportJob) -> str:
        return ", ".join(str(f) for f in obj.formats) or "None yet"

    @admin.display(description="ignored files")
    def ignored_files_list(self, obj: ImportJob) -> SafeString | str:
        if not obj.ignored_files:
            return "None"
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((f,) for f in obj.ignored_files))
        )
