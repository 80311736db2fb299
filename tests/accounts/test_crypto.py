"""Spotify tokens are encrypted at rest with MultiFernet, rotatable, and never shown."""

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from apps.accounts.crypto import Secret, TokenDecryptionError
from apps.accounts.models import SpotifyAccount

REFRESH = "AQDrefresh-token-plaintext-0123456789"
ACCESS = "BQAaccess-token-plaintext-9876543210"


@pytest.fixture
def account(user):
    return SpotifyAccount.objects.create(
        user=user, spotify_id="alice-sp", refresh_token=REFRESH, access_token=ACCESS
    )


def raw_columns(account):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT refresh_token, access_token FROM accounts_spotifyaccount WHERE id = %s",
            [account.pk],
        )
        return cursor.fetchone()


def test_a_token_round_trips_through_the_database(account):
    stored = SpotifyAccount.objects.get(pk=account.pk)
    assert stored.refresh_token.reveal() == REFRESH
    assert stored.access_token.reveal() == ACCESS


def test_the_database_holds_no_plaintext(account):
    refresh, access = raw_columns(account)
    assert REFRESH not in refresh and ACCESS not in access
    assert refresh.startswith("gAAAA")  # a Fernet token


def test_the_instance_repr_and_str_never_show_a_token(account):
    assert REFRESH not in repr(account.refresh_token)
    assert REFRESH not in str(account.refresh_token)
    assert REFRESH not in str(vars(account))
    assert isinstance(account.refresh_token, Secret)


def test_rotation_keeps_tokens_readable_under_the_new_key(account, settings):
    old_key = settings.TOKEN_ENCRYPTION_KEY[0]
    new_key = Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEY = [new_key, old_key]
    out = io.StringIO()
    call_command("rotate_token_key", stdout=out)
    assert out.getvalue() == "Re-encrypted the tokens of 1 Spotify account(s).\n"
    settings.TOKEN_ENCRYPTION_KEY = [new_key]  # the old key is gone
    stored = SpotifyAccount.objects.get(pk=account.pk)
    assert stored.refresh_token.reveal() == REFRESH
    assert stored.access_token.reveal() == ACCESS
    assert Fernet(new_key.encode()).decrypt(raw_columns(account)[0].encode()).decode() == REFRESH


def test_a_wrong_key_gives_a_clear_error(account, settings):
    settings.TOKEN_ENCRYPTION_KEY = [Fernet.generate_key().decode()]
    stored = SpotifyAccount.objects.get(pk=account.pk)
    with pytest.raises(TokenDecryptionError, match="cannot be decrypted with TOKEN_ENCRYPTION_KEY"):
        stored.refresh_token.reveal()


def test_clearing_a_token_stores_null(account):
    account.access_token = None
    account.save()
    assert raw_columns(account)[1] is None
    assert SpotifyAccount.objects.get(pk=account.pk).access_token is None


def test_tokens_never_appear_in_the_admin(account, admin_client):
    page = admin_client.get(f"/admin/accounts/spotifyaccount/{account.pk}/change/").content
    listing = admin_client.get("/admin/accounts/spotifyaccount/").content
    for body in (page, listing):
        assert REFRESH.encode() not in body and ACCESS.encode() not in body
        assert raw_columns(account)[0].encode() not in body
    assert b"alice-sp" in page
