"""`manage.py create_api_token --user USERNAME [--name N]`: print a new API token, once."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import User
from apps.mcp.services import TokenError, create_token


class Command(BaseCommand):
    help = "Create an API token for a user (REST tools, /mcp/call and /mcp); shown only once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The username the token acts for.")
        parser.add_argument("--name", default="Command line", help="A name to recognise it by.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = User.objects.get(username=options["user"])
        except User.DoesNotExist:
            raise CommandError(f"No user named {options['user']!r}.") from None
        try:
            token, value = create_token(user=user, name=options["name"])
        except TokenError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(
            f"Created token {token.name!r} (#{token.pk}) for {user.username}. "
            "Copy it now: it is not shown again."
        )
        self.stdout.write(value)
