from django.contrib import admin
from django.http import HttpRequest

from apps.mcp.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "hint", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "created_at"]
    search_fields = ["name", "user__username", "hint"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = ["hint", "created_at", "last_used_at"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Tokens are created where their value can be shown once: the site or the command.
        return False
