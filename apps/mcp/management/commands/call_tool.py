"""`manage.py call_tool NAME --user USERNAME [--args JSON]`: call a tool and print its JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import User
from apps.mcp import tools


class Command(BaseCommand):
    help = "Call an assistant tool as a user and print the result JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "name", help="Tool name, e.g. history_top_artists (or history.top_artists)."
        )
        parser.add_argument("--user", required=True, help="The username the tool acts for.")
        parser.add_argument(
            "--args",
            dest="tool_args",
            default="{}",
            help="Arguments as JSON, e.g. '{\"days\": 30}'.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = User.objects.get(username=options["user"])
        except User.DoesNotExist:
            raise CommandError(f"No user named {options['user']!r}.") from None
        try:
            arguments = json.loads(options["tool_args"])
        except ValueError as exc:
            raise CommandError(f"--args is not valid JSON: {exc}") from None
        try:
            result = tools.call(options["name"], caller=user, args=arguments)
        except tools.ToolError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(result, indent=2, ensure_ascii=False))
