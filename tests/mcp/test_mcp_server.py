"""`/mcp` through the official MCP Python client against a live server."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import jsonschema
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from apps.mcp.services import create_token, revoke_token
from apps.mcp.tools import TOOLS

from .conftest import EXAMPLE_ARGS

pytestmark = pytest.mark.django_db(transaction=True)


def run_client(url: str, token: str, mode: str, work: Any) -> Any:
    async def main() -> Any:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            return await work(client)

    # In a thread of its own: the browser tests' Playwright may leave an event loop running in
    # this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_every_tool_over_mcp_validates_against_its_output_schema(
    live_server: Any, listening: Any, spotify: Any, token: str, mode: str
) -> None:
    async def work(client: Client) -> Any:
        listed = await client.list_tools()
        results = {}
        for tool in listed.tools:
            results[tool.name] = await client.call_tool(tool.name, EXAMPLE_ARGS[tool.name])
        return client.protocol_version, listed, results

    version, listed, results = run_client(f"{live_server.url}/mcp", token, mode, work)
    assert version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert {t.name for t in listed.tools} == set(TOOLS)
    for tool in listed.tools:
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
        assert tool.annotations.open_world_hint is tool.name.startswith("spotify_")
        result = results[tool.name]
        assert result.is_error is False, (tool.name, result.content)
        jsonschema.validate(result.structured_content, tool.output_schema)
        assert result.content[0].text.startswith("{")
    top = results["history_top_artists"].structured_content
    assert [(a["name"], a["listens"]) for a in top["artists"]] == [
        ("Ärtist A", 5),
        ("Band B", 5),
    ]
    assert top["totals"]["minutes_estimated"] is True
    assert top["rule"]["short_plays_excluded"] == 1


def test_bad_arguments_come_back_as_is_error(live_server: Any, listening: Any, token: str) -> None:
    async def work(client: Client) -> Any:
        return [
            await client.call_tool("history_top_artists", {"limit": 500}),
            await client.call_tool("history_top_artists", {"dayz": 3}),
            await client.call_tool("history_top_artists", {"tz": "Mars/Base"}),
            await client.call_tool("history_top_artists", {"user": "bob"}),
            await client.call_tool("history_timeline", {"granularity": "year"}),
        ]

    too_many, misspelt, zone, other, period = run_client(
        f"{live_server.url}/mcp", token, "legacy", work
    )
    assert too_many.is_error and "<= 50" in too_many.content[0].text
    # The message says what the tool takes, or what the field allows.
    assert misspelt.is_error and misspelt.content[0].text == (
        "Invalid arguments: Object contains unknown field `dayz`. history_top_artists takes: "
        "user, days, start, end, tz, include_short, limit."
    )
    assert period.is_error and period.content[0].text == (
        "Invalid arguments: Invalid enum value 'year' - at `$.granularity`. "
        "Use one of: day, week, month."
    )
    assert zone.is_error and "IANA" in zone.content[0].text
    assert other.is_error and "Only staff" in other.content[0].text


def _post(url: str, **kwargs: Any) -> httpx2.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    return httpx2.post(url, json=body, **kwargs)


def test_http_rules_of_the_endpoint(live_server: Any, user: Any) -> None:
    url = f"{live_server.url}/mcp"
    assert httpx2.get(url).status_code == 405
    anonymous = _post(url)
    assert anonymous.status_code == 401
    assert 'resource_metadata="' in anonymous.headers["WWW-Authenticate"]
    assert "/.well-known/oauth-protected-resource/mcp" in anonymous.headers["WWW-Authenticate"]
    token, value = create_token(user=user, name="x")
    auth = {"Authorization": f"Bearer {value}"}
    foreign = _post(url, headers={**auth, "Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert _post(url, headers=auth).status_code == 200
    revoke_token(user=user, token_id=token.pk)
    revoked = _post(url, headers=auth)
    assert revoked.status_code == 401
    assert 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]
    metadata = httpx2.get(f"{live_server.url}/.well-known/oauth-protected-resource/mcp").json()
    assert metadata["resource"] == url
    assert metadata["authorization_servers"] == [f"{live_server.url}/oauth"]
