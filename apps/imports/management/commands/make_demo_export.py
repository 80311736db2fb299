"""`manage.py make_demo_export PATH --records N --seed S`: a realistic export ZIP to import."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.imports.demo import write_demo_export


class Command(BaseCommand):
    help = "Write a realistic Extended Streaming History ZIP (Zipf artists and tracks, podcasts)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="Where to write the ZIP.")
        parser.add_argument("--records", type=int, default=50_000)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        info = write_demo_export(options["path"], records=options["records"], seed=options["seed"])
        self.stdout.write(
            f"Wrote {options['path']}: {info['records']:,} records in {info['files']} files "
            f"({info['tracks']:,} tracks, {info['episodes']} podcast episodes)."
        )
