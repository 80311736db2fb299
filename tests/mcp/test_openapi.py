"""The OpenAPI schema imports into a Custom GPT as-is: ChatGPT Actions' constraints, walked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from apps.mcp import tools

from .conftest import EXAMPLE_ARGS


@pytest.fixture
def schema(client: Client, db: None) -> dict[str, Any]:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def walk(node: Any, path: str = "") -> Any:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}/{i}")


def test_schema_meets_chatgpt_actions_constraints(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.1")
    assert schema["servers"] and schema["servers"][0]["url"].startswith("http")
    assert schema["components"]["securitySchemes"] == {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from the site's token page or "
            "`manage.py create_api_token`.",
        }
    }
    operations = {
        op["operationId"]: (path, op)
        for path, item in schema["paths"].items()
        for op in item.values()
    }
    assert set(operations) == set(tools.TOOLS)
    components = schema["components"]["schemas"]
    for name, (path, op) in operations.items():
        assert path == f"/api/tools/{name}"
        assert len(op["summary"]) <= 300 and len(op["description"]) <= 300
        assert op["x-openai-isConsequential"] is False
        assert op["security"] == [{"bearerAuth": []}]
        for parameter in op.get("parameters", []):
            assert parameter["in"] == "query"
            assert 0 < len(parameter["description"]) <= 700, (name, parameter["name"])
            assert parameter["schema"].get("type") in ("string", "integer", "boolean")
        ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.removeprefix("#/components/schemas/") in components
    for where, node in walk(schema):
        assert not where.endswith("/oneOf"), where
        if isinstance(node, dict) and node.get("type") == "object":
            assert node.get("properties"), f"free-form object at {where}"
            assert node.get("additionalProperties") in (None, False), where
        if isinstance(node, dict) and "$ref" in node:
            assert node["$ref"].removeprefix("#/components/schemas/") in components, where


def test_swagger_ui_is_served(client: Client, db: None) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert "swagger-ui" in response.content.decode()


def test_worst_case_responses_stay_under_100k_characters(
    client: Client, user: Any, make_track: Any, make_play: Any, token: str, spotify: Any
) -> None:
    """Long names, 60 artists and tracks, sparse plays over years, limit=50, all time."""
    long = "x" * 300
    start = datetime(2020, 1, 1, 12, tzinfo=UTC)
    for i in range(60):
        track = make_track(
            f"{long} track {i}",
            f"{long} artist {i}",
            f"{long} album {i}",
            uri=f"spotify:track:t{i}",
        )
        for j in range(2):
            make_play(user, track, start + timedelta(days=10 * i + j * 400, hours=j))
    auth = {"Authorization": f"Bearer {token}"}
    for name, tool in tools.TOOLS.items():
        args = dict(EXAMPLE_ARGS[name])
        fields = tool.params.__struct_fields__
        if "limit" in fields:
            args["limit"] = 10 if name == "spotify_search" else 50
        if "days" in fields and name != "history_timeline":
            args["days"] = 0
        if name == "history_entity_stats":
            args["query"] = "x"
        if name == "history_timeline":
            args.update(days=0, granularity="week")
        response = client.get(f"/api/tools/{name}", args, headers=auth)
        assert response.status_code == 200, (name, response.content[:300])
        assert len(response.content.decode()) < 100_000, name
