"""One rate limit for tool calls, per token: DRF throttling on the REST surfaces, and the same
throttle applied by hand on `/mcp`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class ToolRateThrottle(SimpleRateThrottle):
    """TOOLS_RATE_LIMIT calls per API token (or OAuth token, or signed-in user, or address)."""

    scope = "tools"

    def get_rate(self) -> str:
        return str(settings.TOOLS_RATE_LIMIT)

    def get_cache_key(self, request: Any, view: Any) -> str:
        token = getattr(request, "api_token", None)
        oauth = getattr(request, "mcp_token", None)
        user = getattr(request, "user", None)
        if token is not None:
            ident = f"token-{token.pk}"
        elif oauth is not None:
            ident = f"oauth-{oauth.pk}"
        elif user is not None and user.is_authenticated:
            ident = f"user-{user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


def retry_after(throttle: ToolRateThrottle) -> int:
    wait = throttle.wait()
    return max(1, int(wait or 1))
