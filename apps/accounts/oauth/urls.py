from allauth.socialaccount.providers.oauth2.urls import default_urlpatterns

from apps.accounts.oauth.provider import SpotifyProvider

urlpatterns = default_urlpatterns(SpotifyProvider)
