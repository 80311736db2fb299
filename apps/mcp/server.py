"""`/mcp`: the tool registry served over MCP (Streamable HTTP) by django-mcpz.

Stateless: the 2025 revisions' initialize handshake and the 2026-07-28 revision are both served.
A caller authenticates with an API token, or with an OAuth 2.1 access token from django-mcpz's
authorization server (ChatGPT apps, Claude connectors); a request without one gets a 401 whose
WWW-Authenticate names the protected-resource metadata. Calls share the REST tools' rate limit.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import django_mcpz.server as mcpz
from django.http import HttpRequest, HttpResponse
from django_mcpz.oauth.auth import oauth_auth
from django_mcpz.oauth.discovery import resource_metadata_url, resource_url
from django_mcpz.schemas import type_schema

from apps.mcp import tools
from apps.mcp.models import TOKEN_PREFIX
from apps.mcp.services import authenticate_token
from apps.mcp.throttling import ToolRateThrottle, retry_after

INSTRUCTIONS = (
    "Tools over the user's own Spotify listening history (collected from Spotify and imported "
    "from their data exports). Windows default to the last 90 days in the user's time zone; "
    "days=0 is all time. Each result says which window, zone and counting rule it used, and "
    "carries a coverage note: tell the user when it says the data is thin."
)


def authenticate(request: HttpRequest) -> HttpResponse | None:
    """An API token or an OAuth access token; then the per-token rate limit."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() == "bearer" and credential.startswith(TOKEN_PREFIX):
        token = authenticate_token(credential)
        if token is None:
            metadata = resource_metadata_url(resource_url(request))
            return HttpResponse(
                status=HTTPStatus.UNAUTHORIZED,
                headers={
                    "WWW-Authenticate": (
                        f'Bearer error="invalid_token", resource_metadata="{metadata}"'
                    )
                },
            )
        request.user = token.user
        request.api_token = token  # type: ignore[attr-defined]
    else:
        rejected = oauth_auth(request)
        if rejected is not None:
            return rejected
    throttle = ToolRateThrottle()
    if not throttle.allow_request(request, None):  # type: ignore[arg-type]  # reads .user only
        wait = retry_after(throttle)
        body = {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": -32000,
                "message": f"Too many tool calls: try again in {wait} seconds.",
            },
        }
        return HttpResponse(
            json.dumps(body),
            status=HTTPStatus.TOO_MANY_REQUESTS,
            content_type="application/json",
            headers={"Retry-After": str(wait)},
        )
    return None


server = mcpz.MCPServer(
    name="spotify-history",
    version="1.0.0",
    title="Spotify listening history",
    instructions=INSTRUCTIONS,
    auth=authenticate,
)


def _handler(tool: tools.Tool) -> Any:
    def handle(request: HttpRequest, arguments: dict[str, Any]) -> Any:
        try:
            params = tools.parse_args(tool, arguments)
            return tools.run(tool, caller=request.user, params=params)  # type: ignore[arg-type]
        except tools.ToolError as exc:
            raise mcpz.ToolError(str(exc)) from None

    handle.__name__ = tool.name
    return handle


for _tool in tools.TOOLS.values():
    server.tool(
        name=_tool.name,
        title=_tool.title,
        description=_tool.description,
        # The schema of the parameters, not their type: the arguments come to the handler as
        # they are, and the registry checks them as it does for every surface, with its hints.
        input_schema={**type_schema(_tool.params), "additionalProperties": False},
        output_schema=_tool.result,
        read_only=True,
        destructive=False,
        idempotent=True,
        open_world=_tool.open_world,
    )(_handler(_tool))
