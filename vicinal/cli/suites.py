"""``vicinal suites``: list the shipped suites, one line each, without importing torch."""

from __future__ import annotations

from rich.table import Table

from vicinal.cli.console import console


def suites_cmd() -> None:
    """List the suites shipped with vicinal."""
    from vicinal.execution.suite import builtin_suites, load_suite

    table = Table()
    for col in ("suite", "dataset", "model", "epochs", "description"):
        table.add_column(col, style="bold" if col == "suite" else None)
    for name in sorted(builtin_suites()):
        # The shipped suites' components are checked by the tests; a listing need not import them.
        s = load_suite(name)
        table.add_row(name, s.dataset, s.model, str(s.recipe.epochs), s.description)
    console.print(table)
