"""The ``vicinal`` command line (typer): the app, its subcommands (one module each in this package) and
``main``, where every user error ends as one message and a non-zero exit code.

Each subcommand module holds one function with typer's option declarations beside the code that uses
them; the work itself lives in the library. They import nothing heavy at module level, so assembling
the app costs milliseconds and ``vicinal --help`` does not import torch.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import typer
from rich.markup import escape

from vicinal.cli.console import WarningHandler, err_console
from vicinal.core.errors import Interrupted, VicinalError

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


class Stopped(VicinalError):
    """A command stopped by Ctrl-C, with what was kept (typer would turn the KeyboardInterrupt itself into a
    silent exit 130: this carries the message past it)."""

    exit_code = 130


def interruptible(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with Ctrl-C turned into :class:`Stopped`: its message says what was kept and how to
    resume where the command knows (:class:`vicinal.core.errors.Interrupted`), else that nothing finished
    was lost (every write is atomic)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            message = exc.message if isinstance(exc, Interrupted) else "nothing finished was lost"
            raise Stopped(message) from None

    return run


def _exit_at_interrupt(signum: int, frame: Any) -> None:
    sys.stdout.flush()
    err_console.print("[yellow]interrupted[/] while exiting; the command had finished, nothing is lost")
    sys.stderr.flush()
    os._exit(130)


def _quiet_exit() -> None:
    """Run first among the exit hooks (registered last): from here on a Ctrl-C ends the process at once
    (exit 130, one line), instead of raising inside a library's exit hook (torch has several), which
    Python reports as "Exception ignored … KeyboardInterrupt" and then exits 0."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _exit_at_interrupt)


def build_app() -> typer.Typer:
    app = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        help="Benchmark vicinal distributions (ERM, mixup, manifold mixup, VarMixup, ...) "
        "on robustness and calibration.",
    )
    for name, (module, function) in COMMANDS.items():
        app.command(name)(interruptible(getattr(importlib.import_module(module), function)))
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
    except Stopped as exc:
        err_console.print(f"[yellow]interrupted[/]: {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except VicinalError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]; nothing finished was lost")
        sys.exit(130)
    except OSError as exc:  # the environment (a file, a folder, the disk), not vicinal, failed
        from vicinal.core.io import describe_os_error

        err_console.print(f"[bold red]error:[/] {escape(describe_os_error(exc))}")
        sys.exit(1)
    finally:
        logging.getLogger("vicinal").removeHandler(handler)
        # Last registered, first run: before the exit hooks of everything this command imported.
        atexit.unregister(_quiet_exit)
        atexit.register(_quiet_exit)
    if isinstance(code, int) and code:  # typer.Exit(code), Ctrl-C (130)
        sys.exit(code)
