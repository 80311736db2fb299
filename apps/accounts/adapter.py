"""allauth's hooks: a Spotify sign-in, sign-up or connect hands its tokens to one service.

allauth keeps no tokens (SOCIALACCOUNT_STORE_TOKENS = False); `connect_spotify` encrypts them
into the user's SpotifyAccount and queues the initial sync.
"""

from __future__ import annotations

from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest
from django.shortcuts import redirect

from apps.accounts import services, spotify
from apps.accounts.models import User

PROVIDER = "spotify"


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(
        self, request: HttpRequest | None, provider: str | None = None, client_id: str | None = None
    ) -> list[SocialApp]:
        """The Spotify app comes from SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET, unless staff
        configured one in the admin."""
        apps = super().list_apps(request, provider=provider, client_id=client_id)
        wanted = settings.SPOTIFY_CLIENT_ID
        if (
            wanted
            and provider in (None, PROVIDER)
            and client_id in (None, wanted)
            and not any(app.provider == PROVIDER for app in apps)
        ):
            apps.append(
                SocialApp(
                    provider=PROVIDER,
                    name="Spotify",
                    client_id=wanted,
                    secret=settings.SPOTIFY_CLIENT_SECRET,
                )
            )
        return apps

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """An existing Spotify user signing in, or a signed-in user connecting Spotify."""
        super().pre_social_login(request, sociallogin)
        if sociallogin.account.provider != PROVIDER:
            return
        if sociallogin.state.get("process") == "connect":
            user = request.user
            if not user.is_authenticated:
                return  # allauth refuses the connect
            if sociallogin.is_existing and sociallogin.user != user:
                return  # connected to someone else: allauth refuses it
            _store_tokens(request, user, sociallogin)
        elif sociallogin.is_existing:
            _store_tokens(request, sociallogin.user, sociallogin)

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None) -> Any:
        """A new user signing up with Spotify."""
        user = super().save_user(request, sociallogin, form)
        if sociallogin.account.provider == PROVIDER:
            _store_tokens(request, user, sociallogin)
        return user


def _store_tokens(request: HttpRequest, user: User, sociallogin: SocialLogin) -> None:
    token = sociallogin.token
    if token is None or not token.token:
        return
    try:
        services.connect_spotify(
            user=user,
            profile=sociallogin.account.extra_data,
            access_token=token.token,
            refresh_token=token.token_secret or None,
            expires_at=token.expires_at,
            scopes=" ".join(spotify.SCOPES),
        )
    except spotify.SpotifyError as exc:
        messages.error(request, str(exc))
        raise ImmediateHttpResponse(redirect("home")) from exc
