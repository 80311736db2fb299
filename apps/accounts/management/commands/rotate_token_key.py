from django.core.management.base import BaseCommand
from django.db import transaction

from apps.accounts.models import SpotifyAccount


class Command(BaseCommand):
    help = "Re-encrypt every stored Spotify token under the first key of TOKEN_ENCRYPTION_KEY."

    def handle(self, *args: object, **options: object) -> None:
        count = 0
        with transaction.atomic():
            for account in SpotifyAccount.objects.select_for_update().only(
                "id", "refresh_token", "access_token"
            ):
                if account.refresh_token:
                    account.refresh_token = account.refresh_token.rotated()
                if account.access_token:
                    account.access_token = account.access_token.rotated()
                account.save(update_fields=["refresh_token", "access_token"])
                count += 1
        self.stdout.write(f"Re-encrypted the tokens of {count} Spotify account(s).")
