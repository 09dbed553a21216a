"""Every Python and shell block of the documentation runs as written, or says why it does not.

The pages are README.md, docs/**/*.md and the files the site includes (BENCHMARKS.md, CHANGELOG.md,
results/README.md). A fenced block is marked by an HTML comment on the line before it (blank lines
allowed in between), which neither GitHub nor the site shows:

- ``<!-- run -->``: run here, per page, in order, in one temporary folder that is the working directory
  and holds the results and caches (``VICINAL_RESULTS_DIR``, ``VICINAL_CACHE_DIR``), so a block may use
  what an earlier block of its page wrote. A ``python`` block is executed in this process in a fresh
  namespace (warnings are errors, as everywhere in the tests), except one whose first line is
  ``# NAME.py``: that is a file the page asks the reader to save, and it is saved as NAME.py for the
  page's later blocks (docs/plugins.md's plugins). A ``bash`` block runs under ``bash -euo pipefail`` and
  must exit 0. A ``toml`` block is a suite file: it is loaded and its names checked as ``--suite FILE``
  would.
- ``<!-- not run: REASON -->``: shown only, because it needs the network, data, a GPU or minutes; the
  page says why in its text.

A ``python``, ``bash``, ``sh``, ``shell`` or ``console`` block with neither marker fails the test, so a
new block is either run or explained."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT

RUNNABLE = {"python", "bash", "toml"}
MUST_BE_MARKED = {"python", "py", "bash", "sh", "shell", "console"}
MARKER = re.compile(r"<!--\s*(run|not run:\s*(?P<reason>.+?))\s*-->")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,}|~{3,})(?P<lang>[\w+-]*)")
SNIPPET = re.compile(r'^--8<--\s+"(?P<path>[^":]+)')


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # "run", "not run" or None
    reason: str = ""

    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """README.md, every page of the site, and the repository files the site's pages include."""
    docs = sorted((ROOT / "docs").rglob("*.md"))
    included = {
        ROOT / m.group("path")
        for page in docs
        for line in page.read_text(encoding="utf-8").splitlines()
        if (m := SNIPPET.match(line.strip()))
    }
    return [ROOT / "README.md", *docs, *sorted(included)]


def blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    name = str(page.relative_to(ROOT))
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, lang = m.group("indent"), m.group("ticks"), m.group("lang").lower()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        code = "\n".join(line.removeprefix(indent) for line in lines[i + 1 : end]) + "\n"
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.fullmatch(before)
        kind = None if marker is None else ("run" if marker.group(1) == "run" else "not run")
        reason = "" if marker is None else (marker.group("reason") or "")
        out.append(Block(name, i + 1, lang, code, kind, reason.strip()))
        i = end + 1
    return out


ALL = [b for page in pages() for b in blocks(page)]
PAGES_TO_RUN = sorted({b.page for b in ALL if b.marker == "run"})


def test_every_block_is_marked():
    unmarked = [b.where() for b in ALL if b.lang in MUST_BE_MARKED and b.marker is None]
    assert not unmarked, f"mark these blocks <!-- run --> or <!-- not run: why -->: {unmarked}"
    assert all(b.reason for b in ALL if b.marker == "not run"), "a <!-- not run --> marker needs its reason"
    wrong = [b.where() for b in ALL if b.marker == "run" and b.lang not in RUNNABLE]
    assert not wrong, f"<!-- run --> on a block this test cannot run (python, bash, toml): {wrong}"


def test_every_marker_stands_before_a_block():
    for page in pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if MARKER.fullmatch(line.strip()):
                after = next((x for x in lines[i + 1 :] if x.strip()), "")
                where = f"{page.relative_to(ROOT)}:{i + 1}"
                assert FENCE.match(after), f"{where}: a marker without a block after it"


def test_the_convention_is_in_use():
    """The pages that must show working code do: the README's API moved to docs/api/index.md."""
    assert {"docs/api/index.md", "docs/getting-started.md", "docs/plugins.md"} <= set(PAGES_TO_RUN)
    api = [b for b in ALL if b.page == "docs/api/index.md" and b.marker == "run"]
    assert len(api) >= 4 and any("vicinal.evaluate(" in b.code for b in api)


def vicinal_on_path(folder: Path) -> str:
    """PATH for the shell blocks: the ``vicinal`` command of the Python running the tests (its own script
    where it has one, else a shim that runs this interpreter), never another installation's."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "vicinal").is_file():
        bin_dir = folder / ".bin"
        bin_dir.mkdir(exist_ok=True)
        shim = bin_dir / "vicinal"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m vicinal.cli "$@"\n')
        shim.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def run_block(block: Block, folder: Path) -> None:
    if block.lang == "python":
        first = block.code.splitlines()[0] if block.code.strip() else ""
        if m := re.fullmatch(r"# (\w+\.py)", first.strip()):
            (folder / m.group(1)).write_text(block.code, encoding="utf-8")
            return
        exec(compile(block.code, block.where(), "exec"), {"__name__": "doc_block"})
    elif block.lang == "bash":
        env = {**os.environ, "PATH": vicinal_on_path(folder), "COLUMNS": "100"}
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.code],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, f"{block.where()} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    elif block.lang == "toml":
        from vicinal.execution.suite import load_suite, validate_components

        path = folder / f"suite-{block.line}.toml"
        path.write_text(block.code, encoding="utf-8")
        validate_components(load_suite(str(path)))


@pytest.mark.parametrize("page", PAGES_TO_RUN)
def test_the_pages_blocks_run(page, isolated):
    for block in (b for b in ALL if b.page == page and b.marker == "run"):
        run_block(block, isolated)
