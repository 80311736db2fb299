"""Sign in with Spotify: allauth's Spotify provider, pointed at the configured Spotify URLs.

allauth builds the `/accounts/spotify/login/` and `.../login/callback/` URLs from this package
(`SOCIALACCOUNT_PROVIDERS["spotify"]["provider_class"]` names the provider below).
"""
