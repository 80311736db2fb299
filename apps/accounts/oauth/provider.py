from __future__ import annotations

from typing import Any

from allauth.socialaccount.providers.spotify.provider import SpotifyOAuth2Provider

from apps.accounts import spotify
from apps.accounts.oauth.views import SpotifyAdapter


class SpotifyProvider(SpotifyOAuth2Provider):
    """allauth's Spotify provider with PKCE on, our scopes, settings-driven URLs, and the uid
    Spotify recommends (`account_id` when the profile has one)."""

    package = "apps.accounts.oauth"
    oauth2_adapter_class = SpotifyAdapter
    pkce_enabled_default = True

    def extract_uid(self, data: dict[str, Any]) -> str:
        return spotify.profile_id(data)

    def get_default_scope(self) -> list[str]:
        return list(spotify.SCOPES)


provider_classes = [SpotifyProvider]
