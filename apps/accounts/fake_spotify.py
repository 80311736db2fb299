"""A small fake Spotify (accounts service and Web API) on a real socket, for tests, the polling
benchmark and staging (`SPOTIFY_ACCOUNTS_BASE_URL` and `SPOTIFY_API_BASE_URL` point at it).

It serves what the project calls: `GET /authorize` (approves at once, as `next_login`), `POST
/api/token` (authorization code with PKCE, refresh token), `GET /v1/me`,
`GET /v1/me/player/recently-played` (`after`/`before`/`limit`/`next`, with Spotify's empty-page
shape), `GET /v1/me/top/{artists,tracks}` and `GET /v1/search`. Each request can be delayed
(`latency`), counted, and answered with a scripted failure (`fail_next`).

    with FakeSpotify(latency=0.05) as fake:
        fake.add_user("alice")
        fake.add_play("alice", played_at=..., name="Song", artist="Artist")
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _iso(ms: int, *, millis: bool = True) -> str:
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if millis:
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_track(name: str, artist: str, album: str = "Album", *, track_id: str = "") -> dict:
    """A Spotify track object with the fields the project reads."""
    track_id = track_id or hashlib.sha1(f"{artist}|{name}".encode()).hexdigest()[:22]
    artist_id = hashlib.sha1(artist.encode()).hexdigest()[:22]
    album_id = hashlib.sha1(f"{artist}|{album}".encode()).hexdigest()[:22]
    artist_obj = {"id": artist_id, "name": artist, "uri": f"spotify:artist:{artist_id}"}
    return {
        "type": "track",
        "id": track_id,
        "uri": f"spotify:track:{track_id}",
        "name": name,
        "duration_ms": 200_000,
        "artists": [artist_obj],
        "album": {
            "id": album_id,
            "name": album,
            "uri": f"spotify:album:{album_id}",
            "artists": [artist_obj],
        },
    }


@dataclass
class FakeUser:
    id: str
    display_name: str
    account_id: str | None = None
    registered: bool = True  # False: 403 "User not registered in the Developer Dashboard"
    # (played_at in ms, track, context, whether played_at is written with milliseconds)
    plays: list[tuple[int, dict, dict | None, bool]] = field(default_factory=list)
    top_artists: list[dict] = field(default_factory=list)
    top_tracks: list[dict] = field(default_factory=list)


class FakeSpotify:
    def __init__(
        self,
        *,
        latency: float = 0.0,
        client_id: str = "fake-client-id",
        client_secret: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency = latency
        self.client_id = client_id
        self.client_secret = client_secret
        self.users: dict[str, FakeUser] = {}
        self.next_login: str | None = None
        self.rotate_refresh_tokens = False
        self.codes: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, str] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.log: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        # (time.time() when the request arrived, path, status answered)
        self.answers: list[tuple[float, str, int]] = []
        self._failures: deque[tuple[str, int, Any, dict[str, str]]] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- Life cycle ---

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeSpotify:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSpotify:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- Data ---

    def add_user(
        self,
        user_id: str,
        display_name: str = "",
        *,
        account_id: str | None = None,
        registered: bool = True,
    ) -> FakeUser:
        user = FakeUser(user_id, display_name or user_id.title(), account_id, registered)
        with self._lock:
            self.users[user_id] = user
        return user

    def add_play(
        self,
        user_id: str,
        *,
        played_at: datetime,
        name: str = "Song",
        artist: str = "Artist",
        album: str = "Album",
        track: dict | None = None,
        context: dict | None = None,
        millis: bool = True,
    ) -> dict:
        track = track or make_track(name, artist, album)
        with self._lock:
            plays = self.users[user_id].plays
            plays.append((_ms(played_at), track, context, millis))
            plays.sort(key=lambda p: p[0], reverse=True)
        return track

    def issue_tokens(self, user_id: str) -> tuple[str, str]:
        """An access and a refresh token for the user, as if they had signed in."""
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        with self._lock:
            self.access_tokens[access] = user_id
            self.refresh_tokens[refresh] = user_id
        return access, refresh

    def revoke(self, refresh_token: str) -> None:
        with self._lock:
            self.refresh_tokens.pop(refresh_token, None)

    def fail_next(
        self,
        path_prefix: str,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests whose path starts with `path_prefix` this way."""
        with self._lock:
            for _ in range(times):
                self._failures.append((path_prefix, status, body, headers or {}))

    def count(self, path_prefix: str = "") -> int:
        with self._lock:
            return sum(n for path, n in self.requests.items() if path.startswith(path_prefix))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.log.clear()
            self.answers.clear()

    # --- Request handling (called from the server threads) ---

    def _take_failure(self, path: str) -> tuple[int, Any, dict[str, str]] | None:
        with self._lock:
            for i, (prefix, status, body, headers) in enumerate(self._failures):
                if path.startswith(prefix):
                    del self._failures[i]
                    return status, body, headers
        return None

    def handle(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str], headers: Any
    ) -> tuple[int, Any, dict[str, str]]:
        arrived = time.time()
        status, body, extra = self._answer(method, path, query, form, headers)
        with self._lock:
            self.answers.append((arrived, path, status))
        return status, body, extra

    def _answer(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str], headers: Any
    ) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests[path] += 1
            self.log.append((method, path, query, form))
        if self.latency:
            time.sleep(self.latency)
        failure = self._take_failure(path)
        if failure is not None:
            return failure
        if path == "/authorize":
            return self._authorize(query)
        if path == "/api/token":
            return self._token(form, headers)
        if path.startswith("/v1/"):
            token = (headers.get("Authorization") or "").removeprefix("Bearer ")
            with self._lock:
                user_id = self.access_tokens.get(token)
            if user_id is None:
                return _api_error(401, "Invalid access token")
            user = self.users[user_id]
            if not user.registered:
                return _api_error(403, "User not registered in the Developer Dashboard")
            return self._api(user, path, query)
        return _api_error(404, "Service not found")

    def _authorize(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if query.get("client_id") != self.client_id:
            return 400, "INVALID_CLIENT: Invalid client", {}
        redirect_uri = query.get("redirect_uri", "")
        if not (redirect_uri.startswith(("https://", "http://127.0.0.1"))):
            return 400, "INVALID_CLIENT: Insecure redirect URI", {}
        if self.next_login is None or self.next_login not in self.users:
            params = {"error": "access_denied", "state": query.get("state", "")}
            return 302, None, {"Location": f"{redirect_uri}?{urlencode(params)}"}
        code = secrets.token_urlsafe(16)
        with self._lock:
            self.codes[code] = {
                "user": self.next_login,
                "redirect_uri": redirect_uri,
                "challenge": query.get("code_challenge"),
                "method": query.get("code_challenge_method"),
                "scope": query.get("scope", ""),
            }
        params = {"code": code, "state": query.get("state", "")}
        return 302, None, {"Location": f"{redirect_uri}?{urlencode(params)}"}

    def _client_ok(self, form: dict[str, str], headers: Any) -> bool:
        basic = headers.get("Authorization") or ""
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            return client_id == self.client_id and secret == self.client_secret
        if form.get("client_secret"):
            return (form.get("client_id"), form["client_secret"]) == (
                self.client_id,
                self.client_secret,
            )
        return form.get("client_id") == self.client_id

    def _token(self, form: dict[str, str], headers: Any) -> tuple[int, Any, dict[str, str]]:
        if not self._client_ok(form, headers):
            return 400, {"error": "invalid_client", "error_description": "Invalid client"}, {}
        grant = form.get("grant_type")
        if grant == "authorization_code":
            with self._lock:
                code = self.codes.pop(form.get("code", ""), None)
            if code is None or code["redirect_uri"] != form.get("redirect_uri"):
                return 400, {"error": "invalid_grant", "error_description": "Invalid code"}, {}
            if code["challenge"]:
                digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                if code["method"] != "S256" or expected != code["challenge"]:
                    return (
                        400,
                        {
                            "error": "invalid_grant",
                            "error_description": "code_verifier was incorrect",
                        },
                        {},
                    )
            elif not self.client_secret:
                return 400, {"error": "invalid_request", "error_description": "No PKCE"}, {}
            access, refresh = self.issue_tokens(code["user"])
            return (
                200,
                {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": refresh,
                    "scope": code["scope"],
                },
                {},
            )
        if grant == "refresh_token":
            old = form.get("refresh_token", "")
            with self._lock:
                user_id = self.refresh_tokens.get(old)
            if user_id is None:
                return (
                    400,
                    {"error": "invalid_grant", "error_description": "Refresh token revoked"},
                    {},
                )
            access = secrets.token_urlsafe(24)
            payload: dict[str, Any] = {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": "user-read-recently-played user-top-read user-read-private",
            }
            with self._lock:
                self.access_tokens[access] = user_id
                if self.rotate_refresh_tokens:
                    new = secrets.token_urlsafe(24)
                    del self.refresh_tokens[old]
                    self.refresh_tokens[new] = user_id
                    payload["refresh_token"] = new
            return 200, payload, {}
        return 400, {"error": "unsupported_grant_type"}, {}

    def _api(self, user: FakeUser, path: str, query: dict[str, str]) -> tuple[int, Any, dict]:
        if path == "/v1/me":
            profile: dict[str, Any] = {
                "id": user.id,
                "display_name": user.display_name,
                "type": "user",
                "uri": f"spotify:user:{user.id}",
                "external_urls": {"spotify": f"https://open.spotify.com/user/{user.id}"},
                "images": [],
                "country": "FR",
                "product": "premium",
            }
            if user.account_id:
                profile["account_id"] = user.account_id
            return 200, profile, {}
        if path == "/v1/me/player/recently-played":
            return self._recently_played(user, query)
        if path in ("/v1/me/top/artists", "/v1/me/top/tracks"):
            items = user.top_artists if path.endswith("artists") else user.top_tracks
            limit = int(query.get("limit", 20))
            if not 1 <= limit <= 50:
                return _api_error(400, "Invalid limit")
            if query.get("time_range", "medium_term") not in (
                "short_term",
                "medium_term",
                "long_term",
            ):
                return _api_error(400, "Invalid time range")
            return 200, {"items": items[:limit], "total": len(items), "limit": limit}, {}
        if path == "/v1/search":
            return self._search(user, query)
        return _api_error(404, "Service not found")

    def _recently_played(self, user: FakeUser, query: dict[str, str]) -> tuple[int, Any, dict]:
        limit = int(query.get("limit", 20))
        if not 1 <= limit <= 50:
            return _api_error(400, "Invalid limit")
        if "after" in query and "before" in query:
            return _api_error(400, "Only one of after and before may be given")
        with self._lock:
            plays = list(user.plays)  # newest first
        if "after" in query:
            after = int(query["after"])
            newer = [p for p in plays if p[0] > after]
            page = newer[-limit:]  # the ones right after the cursor
            more = len(newer) > len(page)
        else:
            before = int(query["before"]) if "before" in query else None
            older = [p for p in plays if before is None or p[0] < before]
            page = older[:limit]
            more = len(older) > len(page)
        base = f"{self.url}/v1/me/player/recently-played"
        if not page:
            return 200, {"items": [], "next": None, "cursors": None, "limit": limit}, {}
        newest, oldest = page[0][0], page[-1][0]
        if "after" in query:
            next_url = f"{base}?{urlencode({'after': newest, 'limit': limit})}" if more else None
        else:
            next_url = f"{base}?{urlencode({'before': oldest, 'limit': limit})}" if more else None
        items = [
            {"track": track, "played_at": _iso(ms, millis=millis), "context": context}
            for ms, track, context, millis in page
        ]
        body = {
            "items": items,
            "next": next_url,
            "cursors": {"after": str(newest), "before": str(oldest)},
            "limit": limit,
            "href": f"{base}?{urlencode(query)}",
        }
        return 200, body, {}

    def _search(self, user: FakeUser, query: dict[str, str]) -> tuple[int, Any, dict]:
        limit = int(query.get("limit", 10))
        if not 1 <= limit <= 10:
            return _api_error(400, "Invalid limit")
        q = query.get("q", "").casefold()
        if not q:
            return _api_error(400, "No search query")
        with self._lock:
            tracks = {p[1]["id"]: p[1] for p in user.plays}
        tracks.update({t["id"]: t for t in user.top_tracks})
        # Field filters, as Spotify reads them: track:"…" and artist:"…" (else any field).
        fields = dict(re.findall(r'(track|artist):"([^"]*)"', q))
        if fields:
            found = [
                t
                for t in tracks.values()
                if fields.get("track", "").strip() in t["name"].casefold()
                and any(
                    fields.get("artist", "").strip() in a["name"].casefold() for a in t["artists"]
                )
            ]
        else:
            found = [
                t
                for t in tracks.values()
                if q in t["name"].casefold() or any(q in a["name"].casefold() for a in t["artists"])
            ]
        body: dict[str, Any] = {}
        for kind in query.get("type", "track").split(","):
            if kind == "track":
                body["tracks"] = {"items": found[:limit], "total": len(found), "limit": limit}
            elif kind == "artist":
                artists = {a["id"]: a for t in found for a in t["artists"]}
                body["artists"] = {
                    "items": list(artists.values())[:limit],
                    "total": len(artists),
                    "limit": limit,
                }
            else:
                body[f"{kind}s"] = {"items": [], "total": 0, "limit": limit}
        return 200, body, {}


def _api_error(status: int, message: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"error": {"status": status, "message": message}}, {}


def _handler(fake: FakeSpotify) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # answers go out at once, not after a delayed ACK

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _respond(self, status: int, body: Any, headers: dict[str, str]) -> None:
            if body is None:
                data = b""
                content_type = "text/plain"
            elif isinstance(body, str | bytes):
                data = body.encode() if isinstance(body, str) else body
                content_type = "text/plain; charset=utf-8"
            else:
                data = json.dumps(body).encode()
                content_type = "application/json; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self, method: str, form: dict[str, str]) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            self._respond(*fake.handle(method, parts.path, query, form, self.headers))

        def do_GET(self) -> None:
            self._dispatch("GET", {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            form = {k: v[-1] for k, v in parse_qs(raw).items()}
            self._dispatch("POST", form)

    return Handler


def main(argv: list[str] | None = None) -> None:
    """`python -m apps.accounts.fake_spotify`: run the fake for staging or a local demo.

    Point the site at it with SPOTIFY_API_BASE_URL and SPOTIFY_ACCOUNTS_BASE_URL set to its
    address and SPOTIFY_CLIENT_ID=fake-client-id; "Sign in with Spotify" then signs in as
    `--user`, who plays a new song every `--every` seconds.
    """
    import argparse
    from datetime import timedelta

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--user", default="demo")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between new plays")
    parser.add_argument("--history", type=int, default=100, help="plays before the start")
    parser.add_argument("--client-id", default="fake-client-id")
    args = parser.parse_args(argv)

    fake = FakeSpotify(port=args.port, client_id=args.client_id)
    fake.add_user(args.user)
    fake.next_login = args.user
    now = datetime.now(UTC)
    for i in range(args.history):
        fake.add_play(
            args.user,
            played_at=now - timedelta(minutes=4 * (i + 1)),
            name=f"Song {i % 37}",
            artist=f"Artist {i % 7}",
        )
    fake.start()
    print(f"Fake Spotify on {fake.url} (client id {args.client_id!r}, user {args.user!r})")
    n = 0
    try:
        while True:
            time.sleep(args.every)
            n += 1
            fake.add_play(
                args.user, played_at=datetime.now(UTC), name=f"Song {n % 37}", artist="Artist 1"
            )
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
