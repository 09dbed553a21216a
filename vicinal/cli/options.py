"""What the subcommands share: option types written once, and the helpers that parse and apply them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from vicinal.cli.console import console, err_console
from vicinal.core.errors import VicinalError

if TYPE_CHECKING:
    from vicinal.store.results import Store


def path_of(flag: str) -> Callable[[str], Path]:
    """The parser of a path option: an empty value is refused (``--results ""`` would be the current
    folder), anything else is the path as given."""

    def parse(value: str | Path) -> Path:
        if isinstance(value, Path):  # the option's default (report.html)
            return value
        if not value.strip():
            raise VicinalError(f"{flag} is empty; give a path, or leave the option out for the default")
        return Path(value)

    return parse


def text_of(flag: str) -> Callable[[str], str]:
    """The parser of a text option that must not be empty (``--name ""``, ``--data-dir ""``)."""

    def parse(value: str) -> str:
        if not value.strip():
            raise VicinalError(f"{flag} is empty; give a value, or leave the option out for the default")
        return value

    return parse


PluginOpt = Annotated[
    list[str] | None, typer.Option("--plugin", help="extra method/evaluator module or .py file (repeatable)")
]


ResultsOpt = Annotated[
    Path | None,
    typer.Option(
        "--results",
        parser=path_of("--results"),
        help="results folder [default: $VICINAL_RESULTS_DIR or ./results]",
    ),
]


SuiteOpt = Annotated[str, typer.Option(help="shipped suite name or path to a suite TOML")]
EvaluatorsOpt = Annotated[
    str | None, typer.Option(help="comma-separated evaluators to run [default: the suite's]")
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")]
DataDirOpt = Annotated[
    str | None,
    typer.Option(
        parser=text_of("--data-dir"), help="data folder [default: $VICINAL_DATA_DIR or the cache folder]"
    ),
]
DownloadOpt = Annotated[bool, typer.Option(help="download the dataset if it is missing")]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        parser=path_of("--cache-dir"),
        help="VAE, checkpoint and -C set cache [default: $VICINAL_CACHE_DIR or ~/.cache/vicinal]",
    ),
]
QuietOpt = Annotated[bool, typer.Option(help="no progress bars")]


ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="CPU threads for torch (default: $OMP_NUM_THREADS, else $VICINAL_THREADS, else one per "
        "physical core available); idle threads sleep (OMP_WAIT_POLICY=PASSIVE) unless you set "
        "OMP_WAIT_POLICY or GOMP_SPINCOUNT",
    ),
]


def apply_threads(threads: int | None) -> None:
    """Apply ``--threads`` before this command imports torch (main() applied the defaults already); a
    count above the CPUs this process may use is refused, one inherited from the environment is lowered
    to them and said."""
    from vicinal.cli.console import warn
    from vicinal.host.threads import apply_thread_policy, check_thread_count

    check_thread_count(threads, "--threads")
    policy = apply_thread_policy(threads, origin="--threads")
    if policy.requested is not None:
        warn(
            f"{policy.source}={policy.requested} is more than the {policy.threads} CPU(s) this process may "
            f"use; torch runs {policy.threads} thread(s), and the results record that"
        )


def load_plugins(plugins: list[str] | None) -> None:
    from vicinal.core.registry import load_plugin

    for p in plugins or []:
        load_plugin(p)


def parse_flag(flag: str, parse: Callable[[list[str]], Any], values: list[str]) -> Any:
    """Parse a repeatable option; its errors name the option."""
    try:
        return parse(values)
    except VicinalError as exc:
        raise VicinalError(f"{flag} {exc}") from None


def csv_list(value: str | None, what: str) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise VicinalError(f"{what} is empty; give a comma-separated list")
    return items


def watching_terminal_width() -> int | None:
    """The width of the terminal a person reads a pipe's output on (``vicinal leaderboard | less``):
    standard output is a pipe, and standard error or input is that terminal. None for a file (it keeps
    its fixed width) or a pipe nobody watches (a CI step, ``cmd 2>log | tee out``)."""
    import os
    import stat
    import sys

    try:
        if not stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode):
            return None
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (a test's capture)
        return None
    for stream in (sys.stderr, sys.stdin):
        try:
            if stream is not None and os.isatty(stream.fileno()):
                return os.get_terminal_size(stream.fileno()).columns or None
        except (OSError, ValueError, AttributeError):
            continue
    return None


def table_width(option: int | None) -> int:
    """Columns for the terminal table: ``--width``, else the terminal's (or $COLUMNS), else for a pipe
    the width of the terminal its reader sits at, else the default for a file (or a pipe nobody
    watches), which has no width of its own."""
    import os

    from vicinal.board.formats import DEFAULT_WIDTH

    if option is not None:
        return option
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console.width
    return watching_terminal_width() or DEFAULT_WIDTH


def load_results(results_dir: Path, cache_dir: Path | None = None) -> Store:
    """The result files under ``results_dir``; each unreadable one is named in a warning, never fatal."""
    from vicinal.store.index import index_file
    from vicinal.store.results import default_cache_dir, load_store

    # The index in the cache folder spares decoding unchanged result files again (10,000 files: seconds).
    store = load_store(results_dir, index=index_file(results_dir, cache_dir or default_cache_dir()))
    for path, why in store.skipped:
        err_console.print(f"[yellow]warning[/]: skipped {escape(str(path))}: {escape(why)}")
    return store


def require_results(results: Path | None) -> tuple[Path, Store]:
    """The results folder (``--results``, else the default) and its result files; an error naming the
    folder when it holds none (for the commands that only read results)."""
    from vicinal.store.results import default_results_dir

    results_dir = results or default_results_dir()
    store = load_results(results_dir)
    if not store.results:
        raise VicinalError(f"no result files in {results_dir}; run `vicinal run` first or pass --results DIR")
    return results_dir, store
