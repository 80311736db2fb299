"""`manage.py import_export PATH --user USERNAME [--json]`: the upload's ingest, synchronously."""

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from apps.accounts.models import User
from apps.imports import services
from apps.imports.models import ImportJob


class Command(BaseCommand):
    help = "Import a Spotify export ZIP for a user, here and now, and print a summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="The export ZIP.")
        parser.add_argument("--user", required=True, help="The username the plays belong to.")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user named {options['user']!r}.")
        try:
            with transaction.atomic():
                job = services.create_local_job(user=user, path=options["path"], queue=False)
        except OSError as exc:
            raise CommandError(f"Cannot read {options['path']}: {exc.strerror or exc}") from None
        started = time.perf_counter()
        show_bar = not options["json"] and self.stdout.isatty()
        try:
            done = services.run_import(job_id=job.pk, progress=self._bar if show_bar else None)
        except services.UserBusy as exc:
            # Never claimed: nothing of it ran. Left pending, a worker would run it later.
            job.delete()
            raise CommandError(f"{exc} Nothing was imported; run this again after it.") from None
        job = done or job
        seconds = time.perf_counter() - started
        if show_bar:
            self.stdout.write("")
        services.after_import(job)  # as the worker does
        summary = services.job_summary(job)
        summary["seconds"] = round(seconds, 3)
        if options["json"]:
            self.stdout.write(json.dumps(summary, indent=2))
        else:
            self._print(summary, job.skip_reasons)
        if job.status != ImportJob.Status.SUCCEEDED:
            raise CommandError(job.error or f"The import ended as {job.status}.")

    def _bar(self, job: ImportJob) -> None:
        pct = job.progress_pct
        filled = int(pct // 2.5)
        bar = "#" * filled + "." * (40 - filled)
        self.stdout.write(f"\r[{bar}] {pct:5.1f}%  {job.records_processed:,} records", ending="")
        self.stdout.flush()

    def _print(self, s: dict[str, Any], skip_reasons: list[tuple[str, int]]) -> None:
        skipped = "; ".join(f"{n:,} with {reason}" for reason, n in skip_reasons)
        lines = [
            f"Import #{s['id']} of {s['file']}: {s['status']}",
            f"  records:     {s['records']:,}",
            f"  plays added: {s['plays_added']:,}",
            f"  duplicates:  {s['duplicates']:,}",
            f"  skipped:     {s['skipped_total']:,}" + (f" ({skipped})" if skipped else ""),
            f"  earliest:    {s['earliest'] or '-'}",
            f"  latest:      {s['latest'] or '-'}",
            f"  seconds:     {s['seconds']}",
        ]
        if s["ignored_files"]:
            lines.append(f"  ignored:     {len(s['ignored_files'])} other files")
        if s["error"]:
            lines.append(f"  error:       {s['error']}")
        self.stdout.write("\n".join(lines))
