"""Resumable, checksummed downloads of the released -C archives (multi-GB files from Zenodo).

torchvision's helper (used for the clean datasets) restarts from zero after a dropped connection and
cannot tell a saved HTML error page from data; for 3 GB archives both matter, so this module resumes a
``.part`` file with an HTTP Range request, refuses HTML responses and verifies size and MD5 before the
archive is renamed into place and extracted.
"""

from __future__ import annotations

import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from vicinal.corrupted import RELEASES, Release, md5_of
from vicinal.errors import VicinalError

CHUNK = 1 << 20


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:15].lower()
    return start.startswith((b"<!doctype", b"<html", b"<head", b"<?xml"))


def download_file(
    urls: tuple[str, ...] | list[str],
    dest: Path,
    md5: str,
    size: int | None = None,
    progress: Any = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``dest`` from the first URL that works, resuming ``dest.part``; verify and rename."""
    if dest.is_file() and (size is None or dest.stat().st_size == size) and md5_of(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in urls:
        try:
            _fetch(url, part, size, progress, timeout)
        except (urllib.error.URLError, OSError, VicinalError) as exc:
            errors.append(f"{url}: {exc}")
            continue
        got = part.stat().st_size
        if size is not None and got != size:
            errors.append(f"{url}: {got} bytes, expected {size}")
            continue
        digest = md5_of(part)
        if digest != md5:
            part.unlink()  # a complete file with the wrong hash cannot be resumed into the right one
            errors.append(f"{url}: MD5 {digest}, expected {md5}")
            continue
        os.replace(part, dest)
        return dest
    raise VicinalError(
        f"could not download {dest.name}:\n  "
        + "\n  ".join(errors)
        + f"\nA partial download is kept in {part} "
        "and resumes on the next try; or download the file by hand into " + str(dest.parent)
    )


def _fetch(url: str, part: Path, size: int | None, progress: Any, timeout: float) -> None:
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have == size:
        return
    request = urllib.request.Request(url, headers={"User-Agent": "vicinal"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the part file is complete
            return
        raise
    with response:
        if "text/html" in response.headers.get("Content-Type", ""):
            raise VicinalError(
                "the server answered with an HTML page, not the archive (a broken or moved link)"
            )
        if response.status == 200 and have:
            have = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        task = (
            progress.add_task(f"download {part.name[:-5]}", total=total, completed=have) if progress else None
        )
        with open(part, "ab" if have else "wb") as f:
            first = True
            while block := response.read(CHUNK):
                if first and not have and _looks_like_html(block[:512]):
                    raise VicinalError("the download starts like an HTML page, not the archive")
                first = False
                f.write(block)
                if task is not None:
                    progress.advance(task, len(block))


def fetch_release(dataset: str, data_dir: Path, progress: Any = None) -> Path:
    """Download, verify and extract the released -C set of ``dataset`` into ``data_dir``."""
    release: Release | None = RELEASES.get(dataset)
    if release is None:
        raise VicinalError(
            f"no released corrupted set for {dataset!r} (known: {', '.join(RELEASES)}); make one with "
            f"`vicinal corrupt --dataset {dataset}`"
        )
    archive = download_file(
        release.urls, data_dir / release.archive, release.archive_md5, release.archive_bytes, progress
    )
    with tarfile.open(archive) as tar:
        tar.extractall(data_dir, filter="data")
    return data_dir / release.folder
