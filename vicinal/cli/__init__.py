"""The ``vicinal`` command line: one module per subcommand, assembled in :mod:`vicinal.cli.app`."""

from __future__ import annotations


def main() -> None:
    """The console script's entry point (``vicinal = "vicinal.cli:main"``)."""
    from vicinal.cli.app import main as run_main

    run_main()
