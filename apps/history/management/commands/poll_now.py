"""`manage.py poll_now --user USERNAME [--initial]`: poll one user (or run their initial sync)
now, in this process, with the same service the worker runs, and print what it did."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import User
from apps.accounts.spotify import SpotifyError
from apps.history import collection
from apps.history.models import JobRun


class Command(BaseCommand):
    help = "Poll one user's Spotify recently-played list now (or run the initial sync)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, metavar="USERNAME")
        parser.add_argument(
            "--initial", action="store_true", help="Run the initial sync instead of a poll."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user named {options['user']!r}.")
        service = collection.initial_sync if options["initial"] else collection.poll_user
        try:
            run = service(user=user)
        except SpotifyError as exc:
            raise CommandError(str(exc)) from exc
        what = "Initial sync" if options["initial"] else "Poll"
        if run.status == JobRun.Status.SKIPPED:
            self.stdout.write(f"{what} of {user.username} skipped: {run.counts['skipped']}.")
            return
        c = run.counts
        line = (
            f"{what} of {user.username}: {c['requests']} Spotify requests, {c['fetched']} plays "
            f"fetched, {c['added']} added, {c['duplicates']} already known"
        )
        if options["initial"]:
            line += f"; stopped on {c['stop_reason']}, earliest play {c['earliest'] or 'none'}"
        self.stdout.write(self.style.SUCCESS(line + f" (job run #{run.pk})."))
