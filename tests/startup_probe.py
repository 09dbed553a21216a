"""Measure the start-up of ``vicinal run``: the real command line, stopped at the first training batch.

``python tests/startup_probe.py OUT.json run --suite digits --methods erm ...`` runs ``vicinal.cli.main``
with those arguments. When ``vicinal.methods.erm`` is imported, its ``training_step`` is wrapped (an import
hook; the file on disk is unchanged, so the code fingerprints are the real ones). At the *second* call —
the first batch done, optimizer step included, since torch.optim's first step has import costs of its own
— it writes the process's CPU seconds, peak RSS, its wall seconds since ``$VICINAL_BENCH_T0`` (the
parent's clock at spawn) and which heavy packages were imported to OUT.json, and ends the process.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path

TARGET = "vicinal.methods.erm"
WATCH = (
    "torch._inductor",
    "torch._dynamo",
    "scipy.optimize",
    "scipy.stats",
    "sklearn",
    "foolbox",
    "matplotlib",
)


def _report(out: Path) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "modules": len(sys.modules),
        "imported": sorted(m for m in WATCH if m in sys.modules),
    }
    if os.environ.get("VICINAL_BENCH_T0"):
        report["wall_s"] = time.time() - float(os.environ["VICINAL_BENCH_T0"])
    out.write_text(json.dumps(report))
    sys.stdout.flush()
    os._exit(0)


class _Hook(importlib.abc.MetaPathFinder):
    def __init__(self, out: Path):
        self.out = out

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            step = module.ERM.training_step
            calls = []

            def second_step(*args, **kwargs):
                calls.append(1)
                if len(calls) == 2:
                    _report(self.out)
                return step(*args, **kwargs)

            module.ERM.training_step = second_step

        spec.loader.exec_module = exec_module
        return spec


def main() -> None:
    out = Path(sys.argv[1])
    sys.meta_path.insert(0, _Hook(out))
    sys.argv = ["vicinal", *sys.argv[2:]]
    from vicinal.cli import main as cli

    cli()
    raise SystemExit(f"startup_probe: the run ended before a second training step of {TARGET}")


if __name__ == "__main__":
    main()
