from __future__ import annotations

from typing import Any

from allauth.socialaccount.models import SocialLogin, SocialToken
from allauth.socialaccount.providers.base import ProviderException
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView, OAuth2LoginView
from allauth.socialaccount.providers.spotify.views import SpotifyOAuth2Adapter
from django.http import HttpRequest

from apps.accounts import spotify


class SpotifyAdapter(SpotifyOAuth2Adapter):
    """Every URL from SPOTIFY_ACCOUNTS_BASE_URL / SPOTIFY_API_BASE_URL, and the profile fetched
    by the one Spotify client, with the token in the Authorization header."""

    @property
    def authorize_url(self) -> str:
        return spotify.accounts_url("/authorize")

    @property
    def access_token_url(self) -> str:
        return spotify.accounts_url("/api/token")

    @property
    def profile_url(self) -> str:
        return spotify.api_url("/v1/me")

    def complete_login(
        self, request: HttpRequest, app: Any, token: SocialToken, **kwargs: Any
    ) -> SocialLogin:
        try:
            profile = spotify.get_profile(token.token)
        except spotify.SpotifyError as exc:
            raise ProviderException(str(exc)) from exc
        return self.get_provider().sociallogin_from_response(request, profile)


oauth2_login = OAuth2LoginView.adapter_view(SpotifyAdapter)
oauth2_callback = OAuth2CallbackView.adapter_view(SpotifyAdapter)
