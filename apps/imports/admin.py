from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.imports import services
from apps.imports.models import ImportJob, MergedPlay


class ImportJobAddForm(forms.ModelForm):
    """Staff upload an export for any user."""

    class Meta:
        model = ImportJob
        fields = ["user", "file"]

    def clean_file(self) -> Any:
        upload = self.cleaned_data.get("file")
        if not upload:
            raise forms.ValidationError("Choose the export ZIP to import.")
        if upload.size > services.max_upload_bytes():
            raise forms.ValidationError(services.too_big_message())
        return upload


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
    actions = ["run_again"]
    readonly_fields = [
        "user",
        "file",
        "local_path",
        "original_name",
        "size",
        "sha256",
        "status",
        "progress_pct",
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
        "bytes_total",
        "bytes_processed",
        "play_id_floor",
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
        (None, {"fields": ["user", "original_name", "file", "local_path", "size", "sha256"]}),
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
        (
            "Resume state",
            {
                "classes": ["collapse"],
                "fields": [
                    "records_total",
                    "records_processed",
                    "bytes_total",
                    "bytes_processed",
                    "play_id_floor",
                ],
            },
        ),
    )

    class Media:
        css = {"all": ["css/admin.css"]}

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None:
            return self.change_fieldsets
        return super().get_fieldsets(request, obj)

    @admin.display(description="progress")
    def progress(self, obj: ImportJob) -> SafeString:
        if obj.records_total:
            done = f"{obj.records_processed:,} of {obj.records_total:,} records processed"
        else:
            done = f"{obj.records_processed:,} records processed so far"
        return format_html(
            '<progress class="import-progress" max="100" value="{}"></progress> {}% · {}',
            obj.progress_pct,
            obj.progress_pct,
            done,
        )

    @admin.display(description="skipped records")
    def skipped_table(self, obj: ImportJob) -> SafeString | str:
        if not obj.skipped:
            return "None"
        rows = format_html_join(
            "",
            '<tr><td>{}</td><td class="num">{}</td></tr>',
            ((reason, f"{count:,}") for reason, count in obj.skip_reasons),
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

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = ImportJobAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["user", "file"]
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ImportJob, form: Any, change: bool) -> None:
        if change:
            return
        with transaction.atomic():
            services.create_upload_job(user=obj.user, upload=form.cleaned_data["file"], job=obj)

    @admin.action(description="Run the selected failed imports again")
    def run_again(self, request: HttpRequest, queryset: QuerySet[ImportJob]) -> None:
        with transaction.atomic():
            queued = sum(services.retry_job(job=job) for job in queryset)
        self.message_user(
            request,
            f"{queued} failed import(s) queued again."
            + ("" if queued == queryset.count() else " Only failed imports can run again."),
            messages.SUCCESS if queued else messages.WARNING,
        )


@admin.register(MergedPlay)
class MergedPlayAdmin(admin.ModelAdmin):
    """The plays stored before an import that it merged into, as they were, read-only: put back
    if the import fails, dropped when it succeeds."""

    list_display = ["__str__", "job", "played_at", "source", "ms_played"]
    list_filter = ["source"]
    search_fields = ["job__user__username", "job__original_name"]
    list_select_related = ["job"]
    raw_id_fields = ["job"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
