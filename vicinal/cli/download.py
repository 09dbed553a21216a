"""``vicinal download``: a dataset or a released -C set into the data folder, checksummed."""

from __future__ import annotations

from typing import Annotated

import typer

from vicinal.cli.console import console
from vicinal.cli.console import reporter as console_reporter
from vicinal.cli.options import text_of


def download_cmd(
    dataset: Annotated[
        str,
        typer.Argument(
            help="cifar10, cifar100, tinyimagenet, an OOD set (svhn), or a released -C set: cifar10-c, …"
        ),
    ],
    data_dir: Annotated[
        str | None,
        typer.Option(
            parser=text_of("--data-dir"),
            help="where to put it [default: $VICINAL_DATA_DIR or the cache folder]",
        ),
    ] = None,
) -> None:
    """Download and verify (MD5) a dataset, an OOD set or a released -C set into the data folder (the -C
    sets, SVHN and the CIFAR archives resumably)."""
    from vicinal.data.datasets import DATASETS, load_dataset, resolve_data_dir

    if dataset.endswith("-c"):
        from vicinal.data.corrupted import find_set
        from vicinal.data.download import fetch_release

        with console_reporter() as rep:
            folder = fetch_release(dataset[:-2], resolve_data_dir(data_dir), rep)
        found = find_set(folder, None, verify=False)
        console.print(f"{dataset}: {folder}" + (f", {len(found.corruptions)} corruptions" if found else ""))
        return
    from vicinal.data.ood_sets import OOD_SETS, fetch

    source = OOD_SETS.get(dataset)
    if source is not None and source.download is not None:
        # The OOD sets' files (SVHN's test split; the CIFAR archives, which hold the datasets too) come
        # through the resumable, MD5-checked downloader.
        with console_reporter() as rep:
            path = fetch(dataset, resolve_data_dir(data_dir), rep)
        console.print(f"{dataset}: {path}")
        if dataset not in DATASETS:
            return
    data = load_dataset(dataset, data_dir, download=True)
    console.print(
        f"{dataset}: {len(data.train)} train / {len(data.test)} test images in {resolve_data_dir(data_dir)}"
    )
