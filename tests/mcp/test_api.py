"""REST tools, /mcp/call, /mcp/tools and the call_tool command: one registry, same answers."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from apps.accounts.models import User
from apps.mcp import tools
from apps.mcp.services import create_token

from .conftest import EXAMPLE_ARGS


def without_time(value: Any) -> Any:
    """The result with `as_of` (the moment of the call) left out."""
    if isinstance(value, dict):
        return {k: without_time(v) for k, v in value.items() if k != "as_of"}
    if isinstance(value, list):
        return [without_time(v) for v in value]
    return value


def mcp_call(client: Client, token: str, name: str, args: dict[str, Any]) -> Any:
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": name, "arguments": args},
    }
    response = client.post(
        "/mcp",
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2025-06-18"},
    )
    return response.json()["result"]


def rest_query(args: dict[str, Any]) -> dict[str, str]:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in args.items()}


@pytest.mark.parametrize("name", [n for n in EXAMPLE_ARGS if n in tools.TOOLS])
def test_every_surface_returns_the_same_result(
    client: Client, listening: Any, spotify: Any, token: str, name: str
) -> None:
    args = EXAMPLE_ARGS[name]
    auth = {"Authorization": f"Bearer {token}"}
    rest = client.get(f"/api/tools/{name}", rest_query(args), headers=auth)
    assert rest.status_code == 200, rest.content
    call = client.post(
        "/mcp/call",
        {"tool": tools.TOOLS[name].alias, "args": args},
        content_type="application/json",
        headers=auth,
    ).json()
    assert call["success"] is True and call["tool"] == name
    mcp = mcp_call(client, token, name, args)
    assert mcp["isError"] is False
    out = StringIO()
    call_command("call_tool", name, user="alice", args=json.dumps(args), stdout=out)
    expected = without_time(rest.json())
    assert without_time(call["result"]) == expected
    assert without_time(mcp["structuredContent"]) == expected
    assert without_time(json.loads(mcp["content"][0]["text"])) == expected
    assert without_time(json.loads(out.getvalue())) == expected
    # No surface ever shows the Spotify tokens it used.
    for text in (rest.content.decode(), json.dumps(call), json.dumps(mcp), out.getvalue()):
        assert "access-1" not in text and "refresh-1" not in text


def test_rest_answers_with_names_and_the_window(client: Client, listening: Any, token: str) -> None:
    response = client.get(
        "/api/tools/history_top_tracks",
        {"days": "30", "include_short": "true"},
        headers={"Authorization": f"Bearer {token}"},
    )
    body = response.json()
    assert [(t["name"], t["artist"], t["listens"]) for t in body["tracks"]] == [
        ("Gamma", "Band B", 6),
        ("Alpha Song", "Ärtist A", 5),
    ]
    assert body["window"]["days"] == 30 and body["window"]["tz"] == "UTC"
    assert body["rule"] == {
        "min_ms_played": 30000,
        "include_short": True,
        "short_plays_excluded": 0,
        "description": "Every music play counts, short ones included.",
    }


def test_rest_rejects_bad_arguments_with_a_message(client: Client, token: str) -> None:
    response = client.get(
        "/api/tools/history_top_artists",
        {"limit": "99"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    assert "Expected `int` <= 50" in response.json()["error"]


def test_rest_without_a_token_is_401_with_www_authenticate(client: Client, user: Any) -> None:
    response = client.get("/api/tools/history_top_artists")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    bad = client.get("/api/tools/history_top_artists", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert bad.json() == {"detail": "Invalid or revoked API token."}


def test_mcp_call_reports_errors_in_the_body(client: Client, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    unknown = client.post(
        "/mcp/call", {"tool": "history.nothing"}, content_type="application/json", headers=auth
    )
    assert unknown.status_code == 200
    assert unknown.json()["success"] is False
    assert "Unknown tool 'history.nothing'" in unknown.json()["error"]
    bad = client.post(
        "/mcp/call",
        {"tool": "history_timeline", "args": {"granularity": "year"}},
        content_type="application/json",
        headers=auth,
    ).json()
    assert bad == {
        "success": False,
        "tool": "history_timeline",
        "error": "Invalid arguments: Invalid enum value 'year' - at `$.granularity`. "
        "Use one of: day, week, month.",
    }
    not_json = client.post(
        "/mcp/call", "tool=history_timeline", content_type="application/json", headers=auth
    )
    assert not_json.status_code == 200
    assert not_json.json() == {
        "success": False,
        "error": "JSON parse error - Expecting value: line 1 column 1 (char 0) "
        'Send a JSON object: {"tool": "<name>", "args": {}}.',
    }


def test_mcp_call_names_the_keys_of_a_body_in_another_form(client: Client, token: str) -> None:
    mcp_form = client.post(
        "/mcp/call",
        {"name": "history_timeline", "arguments": {}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert mcp_form.json() == {
        "success": False,
        "error": 'Send a JSON object: {"tool": "<name>", "args": {}}. '
        'This one has "name", "arguments".',
    }


@override_settings(TOOLS_RATE_LIMIT="2/min")  # the GET counts too
def test_mcp_call_refusals_keep_their_status_in_its_own_form(
    client: Client, user: Any, token: str
) -> None:
    call = {"tool": "ops_latest_job_runs"}
    anonymous = client.post("/mcp/call", call, content_type="application/json")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert anonymous.json() == {
        "success": False,
        "error": "Authentication credentials were not provided.",
    }
    revoked = client.post(
        "/mcp/call", call, content_type="application/json", headers={"Authorization": "Bearer no"}
    )
    assert revoked.json() == {"success": False, "error": "Invalid or revoked API token."}
    auth = {"Authorization": f"Bearer {token}"}
    get = client.get("/mcp/call", headers=auth)
    assert get.status_code == 405
    assert get.json() == {"success": False, "error": 'Method "GET" not allowed.'}
    first = client.post("/mcp/call", call, content_type="application/json", headers=auth)
    assert first.json()["success"] is True
    limited = client.post("/mcp/call", call, content_type="application/json", headers=auth)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.json()["success"] is False
    assert "throttled" in limited.json()["error"]


def test_mcp_call_from_a_session_needs_its_csrf_token(user: Any) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    refused = browser.post("/mcp/call", {"tool": "ops_latest_job_runs"}, "application/json")
    assert refused.status_code == 403
    assert refused.json() == {
        "success": False,
        "error": "CSRF Failed: CSRF cookie not set.",
    }


def test_catalogue_lists_every_tool_with_its_schemas(client: Client, token: str) -> None:
    body = client.get("/mcp/tools", headers={"Authorization": f"Bearer {token}"}).json()
    assert [t["name"] for t in body["tools"]] == list(tools.TOOLS)
    top = next(t for t in body["tools"] if t["name"] == "history_top_artists")
    assert top["alias"] == "history.top_artists"
    assert top["input_schema"]["properties"]["limit"]["maximum"] == 50
    assert "artists" in top["output_schema"]["properties"]


def test_only_staff_may_name_another_user(
    client: Client, listening: Any, user: Any, other_user: Any
) -> None:
    _, bob_token = create_token(user=other_user, name="bob")
    denied = client.get(
        "/api/tools/history_top_tracks",
        {"user": "alice"},
        headers={"Authorization": f"Bearer {bob_token}"},
    )
    assert denied.status_code == 400
    assert "Only staff" in denied.json()["error"]
    own = client.get(
        "/api/tools/history_top_tracks", headers={"Authorization": f"Bearer {bob_token}"}
    )
    assert [(t["name"], t["listens"]) for t in own.json()["tracks"]] == [("Alpha Song", 1)]
    staff = User.objects.create_user(username="admin", password="x", is_staff=True)
    _, staff_token = create_token(user=staff, name="ops")
    as_alice = client.get(
        "/api/tools/history_top_tracks",
        {"user": "alice", "days": "30"},
        headers={"Authorization": f"Bearer {staff_token}"},
    )
    assert [(t["name"], t["listens"]) for t in as_alice.json()["tracks"]] == [
        ("Alpha Song", 5),
        ("Gamma", 5),
    ]


@override_settings(TOOLS_RATE_LIMIT="3/min")
def test_tool_calls_are_throttled_per_token(client: Client, user: Any, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    statuses = [
        client.get("/api/tools/ops_latest_job_runs", headers=auth).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 200]
    limited = client.get("/api/tools/ops_latest_job_runs", headers=auth)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "throttled" in limited.json()["detail"]
    mcp = client.post(
        "/mcp",
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        content_type="application/json",
        headers=auth,
    )
    assert mcp.status_code == 429
    assert "Too many tool calls" in mcp.json()["error"]["message"]
    _, fresh = create_token(user=user, name="another")
    other = client.get(
        "/api/tools/ops_latest_job_runs", headers={"Authorization": f"Bearer {fresh}"}
    )
    assert other.status_code == 200


def test_create_api_token_command_prints_a_working_token(client: Client, user: Any) -> None:
    out = StringIO()
    call_command("create_api_token", user="alice", name="Cursor", stdout=out, stderr=StringIO())
    value = out.getvalue().strip()
    assert user.api_tokens.get().name == "Cursor"
    response = client.get(
        "/api/tools/ops_latest_job_runs", headers={"Authorization": f"Bearer {value}"}
    )
    assert response.json()["runs"] == []
    with pytest.raises(CommandError, match="No user named 'zed'"):
        call_command("create_api_token", user="zed")


def test_call_tool_command_errors(user: Any) -> None:
    with pytest.raises(CommandError, match="Unknown tool"):
        call_command("call_tool", "nope", user="alice")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("call_tool", "history_top_artists", user="alice", args="{")
