"""The README's "Python API" section, executed: every ```python block of it, in order, in a temporary
folder (results and caches there too), so what the README shows works as written."""

import re

from helpers import ROOT


def python_api_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Python API\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_sections_blocks_run(isolated, capsys):
    blocks = python_api_blocks()
    assert len(blocks) == 3 and any("vicinal.evaluate(" in b for b in blocks)
    for i, block in enumerate(blocks, 1):
        exec(compile(block, f"README.md (Python API, block {i})", "exec"), {"__name__": f"readme_block_{i}"})
    out = capsys.readouterr().out
    assert "'erm':" in out and "'mixup':" in out and "python object" in out
    assert "| my-net" in out and "evaluated" in out
    assert sorted(p.parent.name for p in (isolated / "results" / "digits-c").rglob("*.json")) == [
        "erm",
        "mixup",
        "my-net",
    ]
