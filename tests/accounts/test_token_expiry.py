import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts import services
from apps.accounts.models import SpotifyAccount
from apps.history import collection
from apps.history.models import LogEvent

pytestmark = pytest.mark.django_db


def test_accounts_are_marked_once_at_30_then_at_7_days(user, other_user, connect_fake, caplog):
    now = timezone.now()
    soon = connect_fake(user, refresh_expires_at=now + timedelta(days=25))
    connect_fake(other_user, refresh_expires_at=now + timedelta(days=90))

    with caplog.at_level(logging.WARNING):
        assert services.warn_expiring_tokens(now=now) == 1
        assert services.warn_expiring_tokens(now=now) == 0  # one event per threshold
    soon.refresh_from_db()
    assert soon.expiry_warned_days == 30
    assert "expires in 25 days" in caplog.text
    assert LogEvent.objects.filter(user=user, message__contains="reconnect Spotify").count() == 1

    assert services.warn_expiring_tokens(now=now + timedelta(days=19)) == 1
    soon.refresh_from_db()
    assert soon.expiry_warned_days == 7
    assert SpotifyAccount.objects.get(user=other_user).expiry_warned_days is None
    assert collection.sync_status(user=user)["days_until_token_expiry"] == 24
