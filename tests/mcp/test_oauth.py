"""OAuth 2.1 for ChatGPT apps and Claude connectors: register, authorize with PKCE as a
logged-in user, exchange, call /mcp, refresh, revoke."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.test import Client

from apps.mcp import selectors, services

REDIRECT = "http://127.0.0.1:8765/callback"
RESOURCE = "http://testserver/mcp"


def list_tools(client: Client, access_token: str) -> Any:
    return client.post(
        "/mcp",
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "history_top_artists", "arguments": {"days": 30}},
        },
        content_type="application/json",
        headers={"Authorization": f"Bearer {access_token}", "MCP-Protocol-Version": "2025-06-18"},
    )


def test_oauth_flow_from_registration_to_refresh(client: Client, listening: Any, user: Any) -> None:
    metadata = client.get("/.well-known/oauth-authorization-server/oauth").json()
    assert metadata["registration_endpoint"] == "http://testserver/oauth/register"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    registered = client.post(
        "/oauth/register",
        {"redirect_uris": [REDIRECT], "client_name": "Claude"},
        content_type="application/json",
    )
    assert registered.status_code == 201
    client_id = registered.json()["client_id"]

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge.decode(),
        "code_challenge_method": "S256",
        "resource": RESOURCE,
        "state": "xyz",
    }
    anonymous = client.get("/oauth/authorize", query)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/accounts/login/?next=/oauth/authorize")

    client.force_login(user)
    consent = client.get("/oauth/authorize", query)
    assert consent.status_code == 200
    assert "Claude" in consent.content.decode()
    allowed = client.post(
        "/oauth/authorize?" + "&".join(f"{k}={v}" for k, v in query.items()),
        {"decision": "allow"},
    )
    assert allowed.status_code == 302
    returned = parse_qs(urlsplit(allowed["Location"]).query)
    assert returned["state"] == ["xyz"]
    client.logout()

    tokens = client.post(
        "/oauth/token",
        {
            "grant_type": "authorization_code",
            "code": returned["code"][0],
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "resource": RESOURCE,
        },
    ).json()
    answer = list_tools(client, tokens["access_token"]).json()["result"]
    assert answer["isError"] is False
    assert [a["name"] for a in answer["structuredContent"]["artists"]] == ["Ärtist A", "Band B"]

    refreshed = client.post(
        "/oauth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client_id,
        },
    ).json()
    assert refreshed["access_token"] != tokens["access_token"]
    assert list_tools(client, refreshed["access_token"]).status_code == 200

    [authorised] = selectors.authorized_clients(user=user)
    assert authorised.name == "Claude"
    services.revoke_oauth_client(user=user, client_id=authorised.id)
    refused = list_tools(client, refreshed["access_token"])
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused["WWW-Authenticate"]
