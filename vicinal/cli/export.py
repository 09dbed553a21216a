"""``vicinal export``: a result as a RobustBench model-zoo submission."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from vicinal.cli.console import console
from vicinal.cli.options import CacheDirOpt, path_of, text_of


def export_cmd(
    robustbench: Annotated[
        Path, typer.Option(help="a result file to export in RobustBench's submission format")
    ],
    out: Annotated[
        Path, typer.Option(parser=path_of("--out"), help="folder to write the submission material into")
    ],
    threat: Annotated[str, typer.Option(help="corruptions, Linf or L2")] = "corruptions",
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="the model's state dict [default: the run's cached final checkpoint]"),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(parser=text_of("--name"), help="the model's name [default: the result's method]"),
    ] = None,
    cache_dir: CacheDirOpt = None,
    allow_partial: Annotated[
        bool,
        typer.Option(help="export a result not measured under RobustBench's protocol (said in the footnote)"),
    ] = False,
) -> None:
    """Write a RobustBench model-zoo submission (model-info JSON, state dict, per-cell CSV) for a result."""
    from vicinal.external.robustbench import export_submission

    written = export_submission(
        robustbench,
        out,
        threat=threat,
        checkpoint=checkpoint,
        model_name=name,
        cache_dir=cache_dir,
        allow_partial=allow_partial,
    )
    for what, path in written.items():
        console.print(escape(f"{what}: {path}"))
