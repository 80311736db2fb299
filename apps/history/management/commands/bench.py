"""`manage.py bench [NAME ...]`: the project's benchmarks, on data they generate themselves.

Each benchmark is a module `apps/<app>/bench.py` with `run(*, out, options) -> None` that prints
its figures. They run in a throwaway database (Django's test database for the configured
DATABASE_URL), so the real data is never touched.
"""

from importlib import import_module
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

# name -> module with run(*, out, options)
BENCHMARKS = {
    "imports": "apps.imports.bench",
    "polling": "apps.history.bench",
    "tools": "apps.mcp.bench",
    "admin": "apps.accounts.bench",
}


class Command(BaseCommand):
    help = "Run the benchmarks (all by default) in a throwaway database and print the figures."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
        parser.add_argument("--quick", action="store_true", help="Smaller data, for a smoke run.")
        parser.add_argument("--keepdb", action="store_true", help="Keep the benchmark database.")

    def handle(self, *args: Any, **options: Any) -> None:
        names = options["names"] or list(BENCHMARKS)
        unknown = sorted(set(names) - set(BENCHMARKS))
        if unknown:
            raise CommandError(
                f"Unknown benchmark {', '.join(unknown)}; pick from {', '.join(BENCHMARKS)}."
            )
        available = {}
        for name in names:
            try:
                available[name] = import_module(BENCHMARKS[name])
            except ModuleNotFoundError:
                self.stderr.write(f"{name}: no benchmark yet ({BENCHMARKS[name]} is missing)")
        self.stdout.write(f"Database: {connection.vendor}")
        old_name = connection.creation.create_test_db(
            verbosity=0, autoclobber=True, keepdb=options["keepdb"], serialize=False
        )
        try:
            for name, module in available.items():
                self.stdout.write(self.style.MIGRATE_HEADING(f"== {name}"))
                module.run(out=self.stdout, options=options)
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0, keepdb=options["keepdb"])
