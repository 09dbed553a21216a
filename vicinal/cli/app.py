"""The ``vicinal`` command line (typer): the app, its subcommands (one module each in this package) and
``main``, where every user error ends as one message and a non-zero exit code.

Each subcommand module holds one function with typer's option declarations beside the code that uses
them; the work itself lives in the library. They import nothing heavy at module level, so assembling
the app costs milliseconds and ``vicinal --help`` does not import torch.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys

import typer
from rich.markup import escape

from vicinal.cli.console import WarningHandler, err_console
from vicinal.core.errors import VicinalError

#: Subcommand → (module, function), in the order ``vicinal --help`` lists them.
COMMANDS = {
    "run": ("vicinal.cli.run", "run_cmd"),
    "leaderboard": ("vicinal.cli.leaderboard", "leaderboard_cmd"),
    "compare": ("vicinal.cli.compare", "compare_cmd"),
    "metrics": ("vicinal.cli.metrics", "metrics_cmd"),
    "report": ("vicinal.cli.report", "report_cmd"),
    "methods": ("vicinal.cli.methods", "methods_cmd"),
    "evaluators": ("vicinal.cli.evaluators", "evaluators_cmd"),
    "suites": ("vicinal.cli.suites", "suites_cmd"),
    "evaluate": ("vicinal.cli.evaluate", "evaluate_cmd"),
    "export": ("vicinal.cli.export", "export_cmd"),
    "download": ("vicinal.cli.download", "download_cmd"),
    "corrupt": ("vicinal.cli.corrupt", "corrupt_cmd"),
    "selfcheck": ("vicinal.cli.selfcheck", "selfcheck_cmd"),
}


def build_app() -> typer.Typer:
    app = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        help="Benchmark vicinal distributions (ERM, mixup, manifold mixup, VarMixup, ...) "
        "on robustness and calibration.",
    )
    for name, (module, function) in COMMANDS.items():
        app.command(name)(getattr(importlib.import_module(module), function))
    return app


def main() -> None:
    # Before any command can import torch: libgomp reads its wait policy only when torch loads it.
    from vicinal.host.allocator import apply_allocator_policy
    from vicinal.host.threads import apply_thread_policy

    # A malformed OMP_NUM_THREADS/VICINAL_THREADS is an error only for the commands that use threads.
    with contextlib.suppress(VicinalError):
        apply_thread_policy()
    apply_allocator_policy()
    handler = WarningHandler()
    logging.getLogger("vicinal").addHandler(handler)
    logging.getLogger("vicinal").setLevel(logging.INFO)
    app = build_app()
    if not sys.argv[1:]:  # `vicinal` alone: its help, with the exit code of a usage error, as before
        app(["--help"], standalone_mode=False)
        sys.exit(2)
    code = None
    try:
        # Not standalone: the parser's own errors (a mistyped option, a value of the wrong type) would
        # print as "Usage: …" over a boxed "Error", unlike every other message; they are printed here as
        # one "error:" line like the rest, with the same exit code (2 for a usage error).
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        message = exc.format_message().rstrip(".")
        if message[:1].isupper() and not message[1:2].isupper():  # "No such option" → as vicinal's own
            message = message[0].lower() + message[1:]
        where = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
        err_console.print(f"[bold red]error:[/] {escape(message + where)}")
        sys.exit(exc.exit_code)
    except typer.Abort:  # end of input at a prompt
        sys.exit(1)
    except VicinalError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]; nothing finished was lost")
        sys.exit(130)
    except OSError as exc:  # the environment (a file, a folder, the disk), not vicinal, failed
        where = f" {exc.filename}" if exc.filename else ""
        err_console.print(f"[bold red]error:[/]{escape(where)} {escape(exc.strerror or str(exc))}")
        sys.exit(1)
    finally:
        logging.getLogger("vicinal").removeHandler(handler)
    if isinstance(code, int) and code:  # typer.Exit(code), Ctrl-C (130)
        sys.exit(code)
