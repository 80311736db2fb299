"""REST surfaces of the tool registry: one GET per tool for ChatGPT Actions
(`/api/tools/<name>`, described in the OpenAPI schema), and the original generic interface,
`GET /mcp/tools` and `POST /mcp/call`."""

from __future__ import annotations

from typing import Any

import msgspec
from django_mcpz.schemas import type_schema
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.authentication import (
    BaseAuthentication,
    SessionAuthentication,
    get_authorization_header,
)
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.mcp import tools
from apps.mcp.models import ApiToken
from apps.mcp.services import authenticate_token
from apps.mcp.throttling import ToolRateThrottle

MAX_PARAMETER_DESCRIPTION = 700


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <API token>`; the token's user acts."""

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        scheme, _, credential = (
            get_authorization_header(request).decode(errors="replace").partition(" ")
        )
        if scheme.lower() != "bearer":
            return None
        token = authenticate_token(credential.strip())
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        request._request.api_token = token  # type: ignore[attr-defined]  # for the throttle
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from the site's token page or "
            "`manage.py create_api_token`.",
        }


class ToolAPIView(APIView):
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [ToolRateThrottle]


# --- OpenAPI, from the same msgspec Structs -----------------------------------------------------

REF_TEMPLATE = "#/components/schemas/{name}"


def _openapi(schema: Any) -> Any:
    """msgspec's JSON Schema, shaped for OpenAPI 3.1 and ChatGPT: `X | None` becomes a
    nullable type rather than an anyOf where the type allows it."""
    if isinstance(schema, list):
        return [_openapi(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _openapi(value) for key, value in schema.items()}
    enum = schema.get("enum")
    if isinstance(enum, list) and "type" not in schema and all(isinstance(v, str) for v in enum):
        schema["type"] = "string"
    options = schema.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if isinstance(other.get("type"), str):
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**other, **rest, "type": [other["type"], "null"]}
    return schema


def result_components() -> dict[str, Any]:
    """The components of every tool's result type, plus the error body."""
    _, components = msgspec.json.schema_components(
        [t.result for t in tools.TOOLS.values()], ref_template=REF_TEMPLATE
    )
    components["ToolError"] = {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    }
    return {name: _openapi(schema) for name, schema in components.items()}


def _parameters(tool: tools.Tool) -> list[OpenApiParameter]:
    schema = type_schema(tool.params)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        options = prop.pop("anyOf", None)
        if options:  # optional: `X | None` is just X in a query string
            prop.update(next(o for o in options if o != {"type": "null"}))
        prop = _openapi(prop)
        description = prop.pop("description", "")[:MAX_PARAMETER_DESCRIPTION]
        prop.pop("title", None)
        if prop.get("default", "") is None:
            del prop["default"]
        parameters.append(
            OpenApiParameter(
                name=name,
                type=prop,
                location=OpenApiParameter.QUERY,
                required=name in required,
                description=description,
            )
        )
    return parameters


def tool_view(tool: tools.Tool) -> Any:
    """A GET view for one tool, with its operation in the OpenAPI schema."""

    @extend_schema(
        operation_id=tool.name,
        summary=tool.title,
        description=tool.description,
        parameters=_parameters(tool),
        responses={
            200: OpenApiResponse(
                response={"$ref": REF_TEMPLATE.format(name=tool.result.__name__)},
                description=tool.title,
            ),
            400: OpenApiResponse(
                response={"$ref": REF_TEMPLATE.format(name="ToolError")},
                description="Invalid arguments; the error says what to change.",
            ),
        },
        tags=["tools"],
        extensions={"x-openai-isConsequential": False},
    )
    def get(self: APIView, request: Request) -> Response:
        try:
            result = tools.call(
                tool.name,
                caller=request.user,  # type: ignore[arg-type]  # IsAuthenticated
                args=request.query_params.dict(),
                strict=False,
            )
        except tools.ToolError as exc:
            return Response({"error": str(exc)}, status=400)
        return Response(result)

    name = "".join(part.title() for part in tool.name.split("_")) + "View"
    view: type[ToolAPIView] = type(name, (ToolAPIView,), {"get": get, "__doc__": tool.description})
    return view.as_view()


def postprocess_schema(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """Add the tools' result components and keep one security scheme (Bearer)."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(result_components())
    schemes = components.get("securitySchemes", {})
    components["securitySchemes"] = {k: v for k, v in schemes.items() if k == "bearerAuth"}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            operation["security"] = [{"bearerAuth": []}]
    return result


# --- The original interface ---------------------------------------------------------------------


def catalogue() -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "alias": t.alias,
            "title": t.title,
            "description": t.description,
            "input_schema": type_schema(t.params),
            "output_schema": type_schema(t.result),
            "annotations": {
                "readOnlyHint": True,
                "destructiveHint": False,
                "idempotentHint": True,
                "openWorldHint": t.open_world,
            },
        }
        for t in tools.TOOLS.values()
    ]


@extend_schema(exclude=True)
class ToolCatalogueView(ToolAPIView):
    """GET /mcp/tools: every tool with its input and output schemas."""

    def get(self, request: Request) -> Response:
        return Response({"tools": catalogue()})


@extend_schema(exclude=True)
class ToolCallView(ToolAPIView):
    """POST /mcp/call {"tool": name, "args": {...}}: `{"success", "result" | "error"}`. A
    call's errors are in the body with a 200; a refused request (no or a bad token, throttled,
    not a POST) keeps its HTTP status and headers, in the same body."""

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        response.data = {"success": False, "error": str(detail or response.data)}
        return response

    def post(self, request: Request) -> Response:
        usage = 'Send a JSON object: {"tool": "<name>", "args": {}}.'
        try:
            body = request.data
        except (exceptions.ParseError, exceptions.UnsupportedMediaType) as exc:
            return Response({"success": False, "error": f"{exc.detail} {usage}"})
        if not isinstance(body, dict) or not isinstance(body.get("tool"), str):
            if isinstance(body, dict) and body:
                keys = ", ".join(f'"{key}"' for key in list(body)[:5])
                usage += f" This one has {keys}."
            return Response({"success": False, "error": usage})
        try:
            result = tools.call(
                body["tool"],
                caller=request.user,  # type: ignore[arg-type]  # IsAuthenticated
                args=body.get("args") or {},
            )
        except tools.ToolError as exc:
            return Response({"success": False, "tool": body["tool"], "error": str(exc)})
        return Response(
            {"success": True, "tool": tools.get_tool(body["tool"]).name, "result": result}
        )
