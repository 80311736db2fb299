"""The one Spotify client, on `requests`: polling, initial sync, sign-in and the live tools use it.

- Every URL comes from `SPOTIFY_API_BASE_URL` and `SPOTIFY_ACCOUNTS_BASE_URL`.
- Access tokens are refreshed when they expire, and once on a 401 (then the call is retried
  once). A refresh that brings no new refresh token keeps the old one. `invalid_grant` marks the
  account as needing re-authorization and is never retried.
- 5xx answers and network errors are retried a few times with jittered exponential backoff,
  within a bound.
- A 429 pauses calls for the whole app until `Retry-After`: the pause lives in Django's cache
  (Redis in production), and every worker checks it before calling Spotify. A `QUOTA_EXCEEDED`
  429 is a daily quota: the same pause, marked as such, often hours long.
- A 403 "User not registered in the Developer Dashboard" becomes an error that says what to do.

Every failure is a `SpotifyError` whose message a user can act on. Tokens never appear in logs,
errors or URLs.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import SpotifyAccount

logger = logging.getLogger(__name__)

# Scopes asked for at sign-in: polling, the top lists, the profile.
SCOPES = ("user-read-recently-played", "user-top-read", "user-read-private")

TIMEOUT = (5, 30)  # connect, read
# 5xx and network errors: this many attempts in all, sleeping BACKOFF_BASE * 2**n (jittered
# between 50% and 150%), never more than BACKOFF_MAX in one sleep.
MAX_ATTEMPTS = 3
BACKOFF_BASE = 0.25
BACKOFF_MAX = 4.0
# Refresh the access token when it has less than this left.
REFRESH_MARGIN = timedelta(seconds=60)
# The app-wide pause after a 429, shared by every process through the cache.
PAUSE_CACHE_KEY = "spotify:rate-limit-pause"
# A 429 without Retry-After pauses this long.
DEFAULT_RETRY_AFTER = 30

TOP_KINDS = ("artists", "tracks")
TIME_RANGES = ("short_term", "medium_term", "long_term")
SEARCH_TYPES = ("album", "artist", "playlist", "track", "show", "episode", "audiobook")
SEARCH_MAX_LIMIT = 10
NOT_REGISTERED = "not registered"


class SpotifyError(Exception):
    """A Spotify call failed; the message tells the user what happened and what to do."""


class SpotifyNotConnected(SpotifyError):
    """The user has no usable Spotify connection."""


class SpotifyReauthRequired(SpotifyError):
    """Spotify refused the saved authorization (`invalid_grant`): the user must reconnect."""


class SpotifyNotRegistered(SpotifyError):
    """A development-mode app and a user missing from its allow-list (403)."""


class SpotifyRateLimited(SpotifyError):
    """Spotify calls are paused app-wide until `until` (a 429, or a daily quota)."""

    def __init__(self, message: str, *, until: datetime, quota: bool) -> None:
        super().__init__(message)
        self.until = until
        self.quota = quota

    @property
    def retry_after(self) -> float:
        return max(0.0, (self.until - timezone.now()).total_seconds())


class SpotifyUnavailable(SpotifyError):
    """Spotify answered 5xx, or could not be reached, after the bounded retries."""


# --- The app-wide pause -----------------------------------------------------------------------


def rate_limit_status() -> dict[str, Any] | None:
    """The app-wide pause in force, if any: `{"until", "quota", "seconds_left"}`."""
    pause = cache.get(PAUSE_CACHE_KEY)
    if not pause:
        return None
    until = datetime.fromtimestamp(pause["until"], tz=UTC)
    left = (until - timezone.now()).total_seconds()
    if left <= 0:
        return None
    return {"until": until, "quota": bool(pause.get("quota")), "seconds_left": int(left + 0.999)}


def rate_limit_pause() -> datetime | None:
    """When the app-wide pause on Spotify calls ends, or None when calls may go out."""
    status = rate_limit_status()
    return status["until"] if status else None


def _pause(seconds: float, *, quota: bool) -> datetime:
    until = time.time() + max(seconds, 0)
    current = cache.get(PAUSE_CACHE_KEY)
    if current and current["until"] > until:
        until, quota = current["until"], quota or bool(current.get("quota"))
    cache.set(PAUSE_CACHE_KEY, {"until": until, "quota": quota}, timeout=int(seconds) + 2)
    return datetime.fromtimestamp(until, tz=UTC)


def _rate_limited_error(until: datetime, *, quota: bool) -> SpotifyRateLimited:
    when = timezone.localtime(until, UTC).strftime("%H:%M:%S UTC")
    if quota:
        message = (
            f"This app has used its daily Spotify quota; calls to Spotify are paused until "
            f"{when}. Collection resumes by itself then."
        )
    else:
        message = (
            f"Spotify is rate-limiting this app; calls are paused until {when}. "
            "Try again after that."
        )
    return SpotifyRateLimited(message, until=until, quota=quota)


def _raise_if_paused() -> None:
    status = rate_limit_status()
    if status:
        raise _rate_limited_error(status["until"], quota=status["quota"])


# --- HTTP -----------------------------------------------------------------------------------

_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def api_url(path: str) -> str:
    return f"{settings.SPOTIFY_API_BASE_URL}{path}"


def accounts_url(path: str) -> str:
    return f"{settings.SPOTIFY_ACCOUNTS_BASE_URL}{path}"


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _is_quota(body: Any) -> bool:
    if not isinstance(body, dict):
        return "QUOTA_EXCEEDED" in str(body)
    error = body.get("error")
    return body.get("reason") == "QUOTA_EXCEEDED" or (
        isinstance(error, dict) and error.get("reason") == "QUOTA_EXCEEDED"
    )


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or "")
        if isinstance(error, str):
            return f"{error}: {body.get('error_description', '')}".rstrip(": ")
    return str(body)[:200]


def _retry_after(response: requests.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", DEFAULT_RETRY_AFTER)))
    except ValueError:
        return float(DEFAULT_RETRY_AFTER)


def _send(method: str, url: str, **kwargs: Any) -> requests.Response:
    """One call with the shared pause checked first, 429 shared app-wide and 5xx backed off."""
    for attempt in range(MAX_ATTEMPTS):
        _raise_if_paused()
        try:
            response = _session().request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            failure = f"could not be reached ({type(exc).__name__})"
        else:
            if response.status_code == 429:
                body = _body(response)
                quota = _is_quota(body)
                seconds = _retry_after(response)
                until = _pause(seconds, quota=quota)
                logger.warning(
                    "Spotify answered 429%s; pausing every Spotify call for %ss",
                    " (daily quota)" if quota else "",
                    int(seconds),
                    extra={"store": True, "retry_after": seconds, "quota": quota},
                )
                raise _rate_limited_error(until, quota=quota)
            if response.status_code < 500:
                return response
            failure = f"answered HTTP {response.status_code}"
        if attempt + 1 < MAX_ATTEMPTS:
            delay = min(BACKOFF_MAX, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.5)
            logger.info("Spotify %s; retrying in %.2fs", failure, delay)
            time.sleep(delay)
    raise SpotifyUnavailable(
        f"Spotify {failure} after {MAX_ATTEMPTS} attempts. It is probably a passing outage; "
        "collection retries on the next poll."
    )


# --- Tokens ---------------------------------------------------------------------------------


def _client_auth(data: dict[str, str]) -> tuple[str, str] | None:
    """With a client secret, HTTP Basic; without one (PKCE), the client id in the body."""
    if settings.SPOTIFY_CLIENT_SECRET:
        return (settings.SPOTIFY_CLIENT_ID, settings.SPOTIFY_CLIENT_SECRET)
    data["client_id"] = settings.SPOTIFY_CLIENT_ID
    return None


def _token_failure(account: SpotifyAccount, response: requests.Response) -> SpotifyError:
    body = _body(response)
    code = body.get("error") if isinstance(body, dict) else None
    if code == "invalid_grant":
        reason = (
            "Spotify no longer accepts this app's authorization (it expired or was revoked). "
            "Reconnect Spotify to resume collecting plays."
        )
        return SpotifyReauthRequired(reason)
    if code in ("invalid_client", "unauthorized_client"):
        return SpotifyError(
            "Spotify refused this app's credentials; the operator should check "
            "SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET."
        )
    return SpotifyError(
        f"Spotify refused to refresh the access token (HTTP {response.status_code}: "
        f"{_error_message(body)}). Reconnect Spotify if this keeps happening."
    )


def refresh_access_token(account: SpotifyAccount, *, stale: object = None) -> str:
    """A fresh access token for the account, refreshed under a row lock so that two workers
    never spend the same refresh token twice. `stale` is a token Spotify just refused: if the
    row holds another one, a concurrent refresh already replaced it and that one is used."""
    failure: SpotifyError | None = None
    with transaction.atomic():
        row = SpotifyAccount.objects.select_for_update().get(pk=account.pk)
        if row.refresh_token is None:
            raise SpotifyNotConnected("Spotify is not connected for this account; connect it.")
        if row.needs_reauth:
            raise SpotifyReauthRequired(row.status_reason or "Reconnect Spotify.")
        fresh = (
            row.access_token is not None
            and row.access_expires_at is not None
            and row.access_expires_at > timezone.now() + REFRESH_MARGIN
        )
        if fresh and (stale is None or row.access_token != stale):
            _copy_tokens(row, account)
            return row.access_token.reveal()
        data = {"grant_type": "refresh_token", "refresh_token": row.refresh_token.reveal()}
        auth = _client_auth(data)
        response = _send("POST", accounts_url("/api/token"), data=data, auth=auth)
        if response.status_code == 200:
            payload = response.json()
            row.access_token = payload["access_token"]
            row.access_expires_at = timezone.now() + timedelta(
                seconds=int(payload.get("expires_in", 3600))
            )
            if payload.get("refresh_token"):
                row.refresh_token = payload["refresh_token"]
            if payload.get("scope"):
                row.scopes = payload["scope"]
            row.save(
                update_fields=[
                    "access_token",
                    "access_expires_at",
                    "refresh_token",
                    "scopes",
                    "updated_at",
                ]
            )
            _copy_tokens(row, account)
            logger.info("Refreshed the Spotify access token of %s", row.user_id)
            return payload["access_token"]
        failure = _token_failure(row, response)
        if isinstance(failure, SpotifyReauthRequired):
            row.mark_needs_reauth(str(failure))
            _copy_tokens(row, account)
            account.status, account.status_reason = row.status, row.status_reason
    logger.warning(
        "Spotify token refresh failed for user %s: %s",
        account.user_id,
        failure,
        extra={"user": account.user_id, "store": True},
    )
    raise failure


def _copy_tokens(row: SpotifyAccount, account: SpotifyAccount) -> None:
    if row is not account:
        account.access_token = row.access_token
        account.refresh_token = row.refresh_token
        account.access_expires_at = row.access_expires_at
        account.scopes = row.scopes


def access_token(account: SpotifyAccount) -> str:
    """The account's access token, refreshed first when it is missing or about to expire."""
    if account.refresh_token is None:
        raise SpotifyNotConnected("Spotify is not connected for this account; connect it.")
    if account.needs_reauth:
        raise SpotifyReauthRequired(account.status_reason or "Reconnect Spotify.")
    if (
        account.access_token is not None
        and account.access_expires_at is not None
        and account.access_expires_at > timezone.now() + REFRESH_MARGIN
    ):
        return account.access_token.reveal()
    return refresh_access_token(account)


# --- The Web API ----------------------------------------------------------------------------


def account_for(user: Any) -> SpotifyAccount:
    """The user's Spotify account, ready for API calls, or an error saying what to do."""
    account = SpotifyAccount.objects.filter(user=user).first()
    if account is None or account.refresh_token is None:
        raise SpotifyNotConnected("Spotify is not connected; sign in with Spotify to connect it.")
    if account.needs_reauth:
        raise SpotifyReauthRequired(account.status_reason or "Reconnect Spotify.")
    return account


def _raise_for_api_error(account: SpotifyAccount | None, response: requests.Response) -> None:
    if response.status_code < 400:
        return
    body = _body(response)
    message = _error_message(body)
    if response.status_code == 403 and NOT_REGISTERED in message.lower():
        error: SpotifyError = SpotifyNotRegistered(
            "This Spotify account is not on the app's allow-list (Spotify says: User not "
            "registered in the Developer Dashboard). The operator must add its email under "
            "User Management in the Spotify Developer Dashboard; development-mode apps allow "
            "5 users."
        )
    elif response.status_code == 403:
        error = SpotifyError(
            f"Spotify refused the request (403: {message}). Reconnect Spotify to grant the "
            "permissions this feature needs."
        )
    elif response.status_code == 401:
        error = SpotifyError(
            "Spotify rejected the access token even after a refresh. Reconnect Spotify."
        )
    else:
        error = SpotifyError(
            f"Spotify refused the request (HTTP {response.status_code}: {message})."
        )
    if account is not None and isinstance(error, SpotifyNotRegistered):
        SpotifyAccount.objects.filter(pk=account.pk).update(status_reason=str(error))
        account.status_reason = str(error)
    raise error


def get(account: SpotifyAccount, url: str, params: dict[str, Any] | None = None) -> Any:
    """GET an API URL for the account: a refresh if needed, one refresh and retry on 401."""
    token = access_token(account)
    response = _send("GET", url, params=params, headers={"Authorization": f"Bearer {token}"})
    if response.status_code == 401:
        token = refresh_access_token(account, stale=account.access_token)
        response = _send("GET", url, params=params, headers={"Authorization": f"Bearer {token}"})
    _raise_for_api_error(account, response)
    if account.status_reason and account.status == SpotifyAccount.Status.ACTIVE:
        SpotifyAccount.objects.filter(pk=account.pk).update(status_reason="")
        account.status_reason = ""
    return response.json()


def get_profile(token: str) -> dict[str, Any]:
    """`GET /v1/me` with a bare access token (at sign-in, before an account row exists)."""
    response = _send("GET", api_url("/v1/me"), headers={"Authorization": f"Bearer {token}"})
    _raise_for_api_error(None, response)
    return response.json()


def profile_id(profile: dict[str, Any]) -> str:
    """The stable id of a `/v1/me` profile: `account_id` when Spotify gives one, else `id`."""
    return str(profile.get("account_id") or profile["id"])


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def recently_played(
    *,
    account: SpotifyAccount,
    after: datetime | None = None,
    before: datetime | None = None,
    limit: int = 50,
    url: str | None = None,
) -> dict[str, Any]:
    """One page of `GET /v1/me/player/recently-played`; `url` follows a page's `next`."""
    if url is not None:
        return get(account, url)
    if after is not None and before is not None:
        raise ValueError("Spotify takes `after` or `before`, not both")
    params: dict[str, Any] = {"limit": limit}
    if after is not None:
        params["after"] = _ms(after)
    if before is not None:
        params["before"] = _ms(before)
    return get(account, api_url("/v1/me/player/recently-played"), params)


def get_top(*, account: SpotifyAccount, kind: str, time_range: str, limit: int) -> dict[str, Any]:
    """Spotify's own top artists or tracks of the user, live."""
    if kind not in TOP_KINDS:
        raise SpotifyError(f"kind must be one of {', '.join(TOP_KINDS)}, not {kind!r}.")
    if time_range not in TIME_RANGES:
        raise SpotifyError(
            f"time_range must be one of {', '.join(TIME_RANGES)}, not {time_range!r}."
        )
    if not 1 <= limit <= 50:
        raise SpotifyError("limit must be between 1 and 50.")
    return get(account, api_url(f"/v1/me/top/{kind}"), {"time_range": time_range, "limit": limit})


def search(
    *, account: SpotifyAccount, q: str, types: list[str] | tuple[str, ...], limit: int
) -> dict[str, Any]:
    """Catalogue search, live. Spotify allows at most 10 results per type."""
    if not q.strip():
        raise SpotifyError("Give something to search for.")
    unknown = [t for t in types if t not in SEARCH_TYPES]
    if not types or unknown:
        raise SpotifyError(f"types must be among {', '.join(SEARCH_TYPES)}.")
    if not 1 <= limit <= SEARCH_MAX_LIMIT:
        raise SpotifyError(f"limit must be between 1 and {SEARCH_MAX_LIMIT}.")
    return get(account, api_url("/v1/search"), {"q": q, "type": ",".join(types), "limit": limit})
