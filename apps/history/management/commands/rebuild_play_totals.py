"""`manage.py rebuild_play_totals [--user USERNAME]`: recount the pre-aggregated play totals.

Needed only after changing LISTEN_MIN_MS (the triggers count with the threshold they were
installed with; until this runs, the analysis reads plays directly and stays exact).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from apps.accounts.models import User
from apps.history import totals


class Command(BaseCommand):
    help = "Reinstall the play-total triggers with LISTEN_MIN_MS and recount (PostgreSQL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", help="Recount one user only.")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            self.stdout.write("Nothing to do: play totals are kept on PostgreSQL only.")
            return
        user_id = None
        if options["user"]:
            user = User.objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}.")
            user_id = user.pk
        totals.rebuild(user_id=user_id)
        self.stdout.write(f"Play totals recounted; listens from {totals.threshold()} ms.")
