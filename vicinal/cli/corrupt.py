"""``vicinal corrupt``: write a corrupted (-C) test set from a clean dataset's test split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vicinal.cli.console import console
from vicinal.cli.console import reporter as console_reporter
from vicinal.cli.options import (
    DeviceOpt,
    QuietOpt,
    ThreadsOpt,
    apply_threads,
    csv_list,
    path_of,
    text_of,
)
from vicinal.core.errors import VicinalError


def corrupt_cmd(
    dataset: Annotated[str, typer.Option(help="dataset whose test split is corrupted (cifar10, digits, …)")],
    out: Annotated[
        Path | None,
        typer.Option(
            parser=path_of("--out"),
            help="output folder [default: <data dir>/CIFAR-10-C etc., where -c suites look]",
        ),
    ] = None,
    corruptions: Annotated[str, typer.Option(help="names or subsets: common, extra, noise, …, all")] = "all",
    severities: Annotated[str, typer.Option(help="comma-separated severities 1–5")] = "1,2,3,4,5",
    seed: Annotated[int, typer.Option(help="seed (one generator per corruption and severity)")] = 0,
    table: Annotated[str, typer.Option(help="cifar, tinyimagenet, imagenet or auto (by size)")] = "auto",
    data_dir: Annotated[
        str | None,
        typer.Option(
            parser=text_of("--data-dir"),
            help="clean data folder [default: $VICINAL_DATA_DIR or the cache folder]",
        ),
    ] = None,
    download: Annotated[bool, typer.Option(help="download the clean dataset if it is missing")] = False,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
    threads: ThreadsOpt = None,
) -> None:
    """Write a corrupted test set (the released -C layout, with a manifest) from a clean dataset."""
    apply_threads(threads)
    from vicinal.core.hparams import SEED_MAX
    from vicinal.core.io import probe_writable
    from vicinal.corruptions import SCALES, resolve_corruptions
    from vicinal.data.corrupted import default_folder, write_set
    from vicinal.data.datasets import load_dataset, resolve_data_dir
    from vicinal.host.devices import resolve_device

    names = resolve_corruptions(csv_list(corruptions, "--corruptions"))
    try:
        levels = sorted({int(s) for s in csv_list(severities, "--severities")})
    except ValueError:
        raise VicinalError(f"--severities {severities!r}: give comma-separated integers 1–5") from None
    if not levels or any(s not in range(1, 6) for s in levels):
        raise VicinalError(f"--severities {severities!r}: severities run from 1 to 5")
    if not 0 <= seed <= SEED_MAX:
        raise VicinalError(f"--seed {seed}: give a whole number from 0 to {SEED_MAX:,}")
    if table != "auto" and table not in SCALES:
        raise VicinalError(f"--table {table!r}: choose auto or one of {', '.join(SCALES)}")
    dev = resolve_device(device)
    target = out or default_folder(dataset, resolve_data_dir(data_dir))
    probe_writable(target, "output folder")
    data = load_dataset(dataset, data_dir, download)
    source = {"dataset": data.name, "path": data.source, "test_fingerprint": data.test.fingerprint()}
    with console_reporter(quiet) as rep:
        manifest = write_set(
            data.test,
            target,
            names,
            levels,
            seed=seed,
            table=None if table == "auto" else table,
            device=dev,
            source=source,
            reporter=rep,
        )
    settings = manifest["settings"]
    console.print(
        f"wrote {len(names)} corruptions × {len(levels)} severities × {len(data.test)} images to {target} "
        f"(table {settings['table']}, seed {seed}; manifest.json records the protocol)"
    )
