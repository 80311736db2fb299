"""The assistant surfaces: MCP, its OAuth 2.1 server, the REST tools and their OpenAPI schema."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.mcp import api, tools
from apps.mcp.server import server

urlpatterns = [
    path("mcp", server, name="mcp"),
    path("mcp/tools", api.ToolCatalogueView.as_view(), name="mcp-tools"),
    path("mcp/call", api.ToolCallView.as_view(), name="mcp-call"),
    *(
        path(f"api/tools/{name}", api.tool_view(tool), name=f"tool-{name}")
        for name, tool in tools.TOOLS.items()
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("oauth/", include("django_mcpz.oauth.urls")),
    path("", include("django_mcpz.oauth.wellknown")),
]
