"""The fault catalogue: every bad input or environment fault ends in one clear line, the right exit code, no
traceback, and leaves the result files that existed before byte for byte as they were.

Most cases run the real entry point in this process (fast: torch is imported once); the ones that need a
process of their own (plugins that register names, signals, concurrency) run it in a subprocess.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from helpers import interruptible, run_cli
from synthetic import write_suite

TINY = ["--methods", "erm", "--epochs", "1", "--limit-train", "64", "--evaluators", "clean", "--quiet"]


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def cli(*args: str, cwd: Path, env: dict[str, str]) -> Outcome:
    """``vicinal ARGS`` in this process, as ``main()`` runs it (exit code, stdout, stderr)."""
    from vicinal.cli import main

    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv, os.getcwd()
    os.environ.update(env)
    sys.argv = ["vicinal", *args]
    os.chdir(cwd)
    out, err = _Capture(), _Capture()
    saved_streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdout, sys.stderr = saved_streams
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Outcome(code, out.getvalue(), err.getvalue())


class _Capture:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        return "".join(self.parts)


def subprocess_cli(*args: str, cwd: Path, env: dict[str, str]) -> Outcome:
    done = run_cli(*args, cwd=cwd, env=env)
    return Outcome(done.returncode, done.stdout, done.stderr)


# ---------------------------------------------------------------- fixtures for the cases


def _cifar_batch(n: int, seed: int, **override) -> dict:
    rng = np.random.default_rng(seed)
    d = {
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        "labels": [int(v) for v in rng.integers(0, 10, n)],
        "batch_label": f"batch {seed}",
    }
    d.update(override)
    return d


def make_cifar(root: Path, damage: Callable[[Path], None] | None = None) -> Path:
    """A small CIFAR-10 folder in the python-pickle layout (random pixels), optionally damaged."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(_cifar_batch(20, i)))
    (folder / "test_batch").write_bytes(pickle.dumps(_cifar_batch(20, 9)))
    if damage is not None:
        damage(folder / "data_batch_2")
    return root


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:4000])


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _not_a_dict(p: Path) -> None:
    p.write_bytes(pickle.dumps([1, 2, 3]))


def _a_folder(p: Path) -> None:
    p.unlink()
    p.mkdir()


def _no_permission(p: Path) -> None:
    p.chmod(0)


def _bad_labels(p: Path) -> None:
    p.write_bytes(pickle.dumps(_cifar_batch(20, 2, labels=[12] * 20)))


def _float_data(p: Path) -> None:
    p.write_bytes(pickle.dumps(_cifar_batch(20, 2, data=np.full((20, 3072), 300.0))))


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _malicious(p: Path) -> None:
    p.write_bytes(pickle.dumps({"data": _Payload(), "labels": []}))


def suite_file(tmp: Path, body: str) -> str:
    path = tmp / "s.toml"
    path.write_text(textwrap.dedent(body))
    return str(path)


BASE_SUITE = """
    name = "s"
    [data]
    dataset = "digits"
    [run]
    methods = ["erm"]
    """


def mount_tmpfs(where: Path, size: str) -> bool:
    """A real small filesystem, so "disk full" is the kernel's ENOSPC (needs root; skipped elsewhere)."""
    where.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    return ok.returncode == 0


# ---------------------------------------------------------------- the catalogue


@dataclass
class Case:
    """One row of the catalogue: ``args(tmp)`` builds the command line (and any files it needs)."""

    name: str
    args: Callable[[Path], list[str]]
    code: int
    message: str
    subprocess: bool = False
    needs: str = ""  # "tmpfs" or "nonroot" when the case depends on the environment
    env: dict[str, str] = field(default_factory=dict)


def _cifar_run(damage: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def args(tmp: Path) -> list[str]:
        make_cifar(tmp / "data", damage)
        return ["run", "--suite", "cifar10-quick", "--data-dir", str(tmp / "data"), *TINY]

    return args


def _plugin(tmp: Path, name: str) -> str:
    path = tmp / "plugin_names.py"
    path.write_text(
        textwrap.dedent(
            f"""
            from vicinal import Method, register_method

            @register_method({name!r})
            class Sneaky(Method):
                pass
            """
        )
    )
    return str(path)


def _under_a_file(tmp: Path, name: str) -> str:
    """A path whose parent is a plain file: no folder can be made there, whoever runs the test."""
    (tmp / "plain").write_text("x")
    return str(tmp / "plain" / name)


def _results_under_a_file(tmp: Path) -> list[str]:
    return ["run", *TINY, "--results", _under_a_file(tmp, "results")]


def _results_is_a_file(tmp: Path) -> list[str]:
    (tmp / "plain").write_text("x")
    return ["run", *TINY, "--results", str(tmp / "plain")]


def _full_cache(tmp: Path) -> list[str]:
    if not mount_tmpfs(tmp / "small", "256k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    return ["run", *TINY, "--cache-dir", str(tmp / "small")]


def _full_results(tmp: Path) -> list[str]:
    if not mount_tmpfs(tmp / "small", "64k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    _fill(tmp / "small" / "filler")
    return ["run", *TINY, "--results", str(tmp / "small")]


def _fill(path: Path) -> None:
    """Write until the filesystem is full (a folder can still get empty files: they need no blocks)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def _full_corrupted(tmp: Path) -> list[str]:
    if not mount_tmpfs(tmp / "small", "64k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    return ["corrupt", "--dataset", "digits", "--corruptions", "fog", "--severities", "1", "--quiet",
            "--out", str(tmp / "small" / "digits-c")]  # fmt: skip


CASES = [
    # Names and settings
    Case("misspelt method", lambda t: ["run", "--methods", "mixpu"], 2, "Did you mean: mixup"),
    Case(
        "--methods blamed on the run, not the file",
        lambda t: ["run", "--methods", "erm,nope"],
        2,
        "this run's [run] methods (in place of ",
    ),
    Case("unknown suite", lambda t: ["run", "--suite", "nope"], 2, "unknown suite 'nope'"),
    Case("bad --set key", lambda t: ["run", "--set", "mixup.alfa=1"], 2, "Did you mean 'alpha'"),
    Case("bad --set value", lambda t: ["run", "--set", "mixup.alpha=abc"], 2, "expected a number"),
    Case("--set out of range", lambda t: ["run", "--set", "mixup.alpha=-1"], 2, "must be ≥ 0"),
    Case(
        "--set for an unknown method", lambda t: ["run", "--set", "cutmx.alpha=1"], 2, "Did you mean: cutmix"
    ),
    Case("--seeds not integers", lambda t: ["run", "--seeds", "a,b"], 2, "comma-separated integers"),
    Case("--seeds negative", lambda t: ["run", "--seeds", "-1"], 2, "out of range: it must be ≥ 0"),
    Case("malformed TOML", lambda t: ["run", "--suite", suite_file(t, "name = [")], 2, "is not valid TOML"),
    Case(
        "[data] limit_trian",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE.replace("[run]", "limit_trian = 5\n[run]"))],
        2,
        "[data] has no setting 'limit_trian'. Did you mean 'limit_train'?",
    ),
    Case(
        "[run] method",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE.replace("methods", "method"))],
        2,
        "[run] has no setting 'method'. Did you mean 'methods'?",
    ),
    Case(
        "[model] nmae",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE + '[model]\nnmae = "x"\n')],
        2,
        "Did you mean 'name'?",
    ),
    Case(
        "[methods.mixpu]",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE + "[methods.mixpu]\nalpha = 1.0\n")],
        2,
        "[methods.mixpu]: unknown method 'mixpu'. Did you mean: mixup",
    ),
    Case(
        "unknown evaluator table",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE + "[evaluators.calibraton]\n")],
        2,
        "unknown evaluator 'calibraton'. Did you mean: calibration",
    ),
    Case(
        "unknown top-level key",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE.replace("[data]", "descripton = 'x'\n[data]"))],
        2,
        "Did you mean 'description'?",
    ),
    Case(
        "validation outside [0, 1)",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE.replace("[run]", "validation = 1.5\n[run]"))],
        2,
        "[data] validation = 1.5 is out of range: it must be ≥ 0, < 1",
    ),
    Case(
        "negative limit_train",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE.replace("[run]", "limit_train = -1\n[run]"))],
        2,
        "limit_train = -1 is out of range",
    ),
    Case(
        "empty seeds",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE + "seeds = []\n")],
        2,
        "seeds is empty",
    ),
    Case(
        "non-integer seeds",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE + "seeds = [1.5]\n")],
        2,
        "seeds[0]: expected an integer, got 1.5",
    ),
    Case(
        "seeds of the wrong type",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE + 'seeds = ["a"]\n')],
        2,
        "seeds[0]: expected an integer, got 'a'",
    ),
    Case(
        "an evaluator that is not a table",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE + "[evaluators]\nclean = 3\n")],
        2,
        "clean = 3: expected a table of settings",
    ),
    Case(
        "a number as text in a suite",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE.replace("[run]", 'validation = "0.1"\n[run]'))],
        2,
        "validation: expected a number, got '0.1'",
    ),
    Case(
        "a suite name that is a path",
        lambda t: ["run", "--suite", suite_file(t, BASE_SUITE.replace('name = "s"', 'name = "../x"'))],
        2,
        "invalid suite name '../x'",
    ),
    Case(
        "a method name that is a path",
        lambda t: ["methods", "--plugin", _plugin(t, "../../x")],
        2,
        "invalid method name '../../x'",
        subprocess=True,
    ),
    Case(
        "a method name with markup",
        lambda t: ["methods", "--plugin", _plugin(t, "rich[/x]")],
        2,
        "invalid method name 'rich[/x]'",
        subprocess=True,
    ),
    Case(
        "a plugin re-registering a built-in, used",
        lambda t: ["run", "--plugin", _plugin(t, "mixup"), "--methods", "mixup"],
        2,
        "'mixup' is registered twice",
        subprocess=True,
    ),
    # Devices
    Case("--device meta", lambda t: ["run", "--device", "meta"], 2, "cannot train on 'meta'"),
    Case("--device mps without MPS", lambda t: ["run", "--device", "mps"], 2, "cannot train on 'mps'"),
    Case("--device cuda:7", lambda t: ["run", "--device", "cuda:7"], 2, "cuda:7"),
    Case("--device nonsense", lambda t: ["run", "--device", "gpu0"], 2, "is not a device"),
    # Data
    Case(
        "missing data",
        lambda t: ["run", "--suite", "cifar10", "--data-dir", str(t / "none"), "--methods", "erm"],
        2,
        "vicinal download cifar10",
    ),
    Case("CIFAR batch truncated", _cifar_run(_truncate), 2, "data_batch_2 is truncated or damaged"),
    Case("CIFAR batch of 0 bytes", _cifar_run(_empty), 2, "data_batch_2 is empty (0 bytes)"),
    Case("CIFAR batch not a dict", _cifar_run(_not_a_dict), 2, "holds a list, not a dict"),
    Case("CIFAR batch is a folder", _cifar_run(_a_folder), 2, "data_batch_2: Is a directory"),
    Case("CIFAR batch unreadable", _cifar_run(_no_permission), 2, "permission denied", needs="nonroot"),
    Case("CIFAR labels out of range", _cifar_run(_bad_labels), 2, "labels must be integers 0–9; found 12–12"),
    Case("CIFAR float data", _cifar_run(_float_data), 2, "'data' is float64, the format stores uint8"),
    Case("CIFAR batch with code in it", _cifar_run(_malicious), 2, "refused to load posix.system"),
    # Outputs, checked before any work
    Case("--results under a file", _results_under_a_file, 1, "goes through a file where a folder should be"),
    Case("--results is a file", _results_is_a_file, 1, "is a file, not a folder"),
    Case(
        "report --out is a folder",
        lambda t: ["report", "--out", str(t)],
        1,
        "is a folder; give a file name",
    ),
    Case(
        "leaderboard --out not writable",
        lambda t: ["leaderboard", "--out", _under_a_file(t, "x.md")],
        1,
        "plain is a file, not a folder",
    ),
    Case(
        "corrupt --out not writable",
        lambda t: ["corrupt", "--dataset", "digits", "--out", _under_a_file(t, "c")],
        1,
        "goes through a file where a folder should be",
    ),
    # Disk full (a real tmpfs)
    Case("disk full writing a checkpoint", _full_cache, 1, "no space left on", needs="tmpfs"),
    Case("disk full writing a result", _full_results, 1, "no space left on", needs="tmpfs"),
    Case("disk full writing a corrupted set", _full_corrupted, 1, "no space left on", needs="tmpfs"),
    # Results already on disk
    Case("corrupt result JSON", lambda t: ["leaderboard"], 0, "skipped"),
]


# ---------------------------------------------------------------- issue 22: every bound checked before work


def _suite(tmp: Path, run: str = "", train: str = "", extra: str = "") -> str:
    """A digits suite with extra lines in [run] and [train], and more tables after them."""
    body = BASE_SUITE + run + ("\n[train]\n" + train if train else "") + extra
    return suite_file(tmp, body)


def _loop(tmp: Path) -> str:
    """A symbolic link that loops (la → lb → la)."""
    (tmp / "la").symlink_to(tmp / "lb")
    (tmp / "lb").symlink_to(tmp / "la")
    return str(tmp / "la")


def _plain_file(tmp: Path) -> str:
    (tmp / "plain").write_text("x")
    return str(tmp / "plain")


def _crafted_checkpoint(tmp: Path) -> list[str]:
    import torch

    torch.save({"weights": _Payload()}, tmp / "evil.pt")
    return [
        "evaluate",
        "--checkpoint",
        str(tmp / "evil.pt"),
        "--model",
        "small-cnn",
        "--name",
        "ext",
        "--evaluators",
        "clean",
    ]


def _damaged_checkpoint(tmp: Path) -> list[str]:
    import torch

    torch.save({"conv.weight": torch.zeros(64, 3, 3, 3)}, tmp / "model.pt")
    (tmp / "model.pt").write_bytes((tmp / "model.pt").read_bytes()[:300])
    return [
        "evaluate",
        "--checkpoint",
        str(tmp / "model.pt"),
        "--model",
        "small-cnn",
        "--name",
        "ext",
        "--evaluators",
        "clean",
    ]


def _export_a_digits_result(tmp: Path) -> list[str]:
    result = sorted((tmp / "results" / "toy").rglob("*-seed0.json"))[0]
    return ["export", "--robustbench", str(result), "--out", str(tmp / "submission")]


ISSUE_22 = [
    # Impossible values, refused before anything runs (section 1)
    Case(
        "negative attack radius",
        lambda t: ["run", "--set", "evaluators.adversarial.linf_eps=-0.1"],
        2,
        "'-0.1' is not a radius; a radius is a finite number ≥ 0",
    ),
    Case(
        "radius over a zero denominator",
        lambda t: ["run", "--set", "evaluators.adversarial.linf_eps=8/0"],
        2,
        "'8/0' is not a radius (its denominator is 0)",
    ),
    Case(
        "radius over a zero denominator in a suite",
        lambda t: ["run", "--suite", _suite(t, extra='[evaluators.adversarial]\nlinf_eps = ["8/0"]\n')],
        2,
        "'8/0' is not a radius (its denominator is 0)",
    ),
    Case(
        "one radius twice",
        lambda t: ["run", "--set", "evaluators.linearity.eps=0.5,1/2"],
        2,
        "'1/2' is the radius 0.5 again",
    ),
    Case(
        "a radius that is not a number",
        lambda t: ["run", "--set", "evaluators.linearity.eps=nan"],
        2,
        "'nan' is not a radius",
    ),
    Case(
        "mCE baseline that names no method",
        lambda t: ["run", "--suite", _suite(t, run='baseline = "nope"\n')],
        2,
        "[run] baseline: unknown method 'nope'",
    ),
    Case(
        "empty --name",
        lambda t: ["evaluate", "--checkpoint", "x.pt", "--model", "small-cnn", "--name", ""],
        2,
        "--name is empty",
    ),
    Case("empty --results", lambda t: ["run", "--results", ""], 2, "--results is empty"),
    Case("empty --cache-dir", lambda t: ["run", "--cache-dir", " "], 2, "--cache-dir is empty"),
    Case("empty --out", lambda t: ["corrupt", "--dataset", "digits", "--out", ""], 2, "--out is empty"),
    Case(
        "--set of one key twice",
        lambda t: ["run", "--set", "mixup.alpha=0.2", "--set", "mixup.alpha=0.4"],
        2,
        "--set mixup.alpha is given twice ('0.2', then '0.4'); give it once",
    ),
    Case(
        "--sweep of one key twice",
        lambda t: ["run", "--methods", "mixup", "--sweep", "mixup.alpha=0.2", "--sweep", "mixup.alpha=1"],
        2,
        "--sweep mixup.alpha is given twice",
    ),
    Case(
        "a sweep listing one value twice",
        lambda t: ["run", "--methods", "mixup", "--sweep", "mixup.alpha=0.2,0.20"],
        2,
        "mixup: the sweep lists alpha = 0.2 twice",
    ),
    Case(
        "a suite's sweep listing one value twice",
        lambda t: ["run", "--suite", _suite(t, extra="[sweep.mixup]\nalpha = [1, 1.0]\n")],
        2,
        "[sweep.mixup]: the sweep lists alpha = 1.0 twice",
    ),
    Case(
        "a list setting naming a value twice",
        lambda t: ["run", "--set", "evaluators.corruption.severities=2,2"],
        2,
        "severities lists 2 twice",
    ),
    Case(
        "--select without --best-of",
        lambda t: ["leaderboard", "--select", "val_nll"],
        2,
        "--select val_nll chooses among swept settings and needs --best-of",
    ),
    Case(
        "--select naming no recorded metric",
        lambda t: ["leaderboard", "--best-of", "alpha", "--select", "val_xyz"],
        2,
        "--select val_xyz: no result file records it",
    ),
    Case(
        "--threads far above the machine's",
        lambda t: ["run", "--threads", "100000"],
        2,
        "--threads 100000: this process may use",
    ),
    Case(
        "a Ray option that is not a number",
        lambda t: ["run", "--executor", "ray", "--gpus-per-run", "nan"],
        2,
        "--gpus-per-run nan: give a finite number",
    ),
    Case(
        "an unknown AutoAttack component",
        lambda t: ["run", "--set", "evaluators.adversarial.autoattack_attacks=apgd-xx"],
        2,
        "unknown AutoAttack component(s) apgd-xx",
    ),
    Case(
        "an unknown corruption table",
        lambda t: ["run", "--set", "evaluators.corruption.table=cifra"],
        2,
        "evaluators.corruption.table = 'cifra': choose auto or one of",
    ),
    # Bounds found only after work had started (section 2)
    Case(
        "a seed beyond 32 bits",
        lambda t: ["run", "--seeds", "18446744073709551616"],
        2,
        "seeds = 18446744073709551616 is out of range: it must be ≥ 0, ≤ 4,294,967,295",
    ),
    Case(
        "a learning rate beyond float32",
        lambda t: ["run", "--suite", _suite(t, train="lr = 1e39\n")],
        2,
        "lr = 1e+39 is beyond float32's range",
    ),
    Case(
        "an infinite weight decay",
        lambda t: ["run", "--suite", _suite(t, train="weight_decay = inf\n")],
        2,
        "weight_decay = inf is not a finite number",
    ),
    Case(
        "a NaN through --set",
        lambda t: ["run", "--set", "mixup.alpha=nan"],
        2,
        "mixup.alpha = nan is not a finite number",
    ),
    Case(
        "an epoch count that cannot finish",
        lambda t: ["run", "--epochs", "10000000"],
        2,
        "epochs = 10000000 is out of range: it must be ≥ 1, ≤ 100,000",
    ),
    Case(
        "a crop padding beyond the image",
        lambda t: ["run", "--suite", _suite(t, train="crop_padding = 1000\n")],
        2,
        "crop_padding = 1000 is out of range",
    ),
    Case(
        "a bootstrap that cannot finish",
        lambda t: ["compare", "erm", "mixup", "--resamples", "1000000000"],
        2,
        "--resamples 1000000000: give 100 to 100,000",
    ),
    Case(
        "a confidence level of 2",
        lambda t: ["compare", "erm", "mixup", "--level", "2"],
        2,
        "--level 2.0: give a confidence level from 0.5 to 0.999",
    ),
    Case(
        "corrupt --seed -1",
        lambda t: ["corrupt", "--dataset", "digits", "--seed", "-1"],
        2,
        "--seed -1: give a whole number from 0",
    ),
    # Raw OS errors and torch's text (section 2)
    Case(
        "a data folder that is a file",
        lambda t: ["run", "--suite", "cifar10-quick", "--data-dir", _plain_file(t), *TINY],
        1,
        "plain is a file, not a folder",
    ),
    Case(
        "download into a data folder that is a file",
        lambda t: ["download", "cifar10", "--data-dir", _plain_file(t)],
        1,
        "plain is a file, not a folder",
    ),
    Case(
        "--results through a symbolic link loop",
        lambda t: ["run", *TINY, "--results", _loop(t) + "/r"],
        1,
        "goes through a symbolic link that loops back on itself",
    ),
    Case(
        "--cache-dir a dangling link",
        lambda t: ["run", *TINY, "--cache-dir", str((t / "gone").symlink_to(t / "nowhere") or t / "gone")],
        1,
        "is a symbolic link to",
    ),
    Case(
        "a crafted checkpoint", _crafted_checkpoint, 2, "is not a plain checkpoint (it refers to posix.system"
    ),
    Case("a damaged checkpoint", _damaged_checkpoint, 2, "cannot be read as a checkpoint"),
    Case(
        "export advises only its own options",
        _export_a_digits_result,
        2,
        "export a result of a cifar10 or cifar100 suite",
    ),
    # Tracebacks (section 3)
    Case(
        "compare --seed -1",
        lambda t: ["compare", "erm", "mixup", "--seed", "-1"],
        2,
        "--seed -1: give a whole number from 0 to 4,294,967,295",
    ),
    Case(
        "leaderboard of a symbolic link loop",
        lambda t: ["leaderboard", "--results", _loop(t)],
        1,
        "the results folder",
    ),
    Case(
        "report of a path through a loop",
        lambda t: ["report", "--results", _loop(t) + "/x"],
        1,
        "goes through a symbolic link that loops back on itself",
    ),
    Case(
        "compare of a symbolic link loop",
        lambda t: ["compare", "erm", "mixup", "--results", _loop(t)],
        1,
        "goes through a symbolic link that loops back on itself",
    ),
]
#: What none of these messages may say: torch's advice to load a crafted file anyway, or an option that the
#: command does not have.
NEVER = ("weights_only=False", "weights_only` set to `False", "(e.g. --suite cifar10-c)")
CASES += ISSUE_22


@pytest.fixture
def workspace(tmp_path):
    """A folder with results already in it (they must survive every case unchanged)."""
    results = tmp_path / "results"
    write_suite(results, methods={"erm": (0.8, 2), "mixup": (0.85, 1)}, corruption=False, artifacts=False)
    (results / "toy" / "broken.json").write_text('{"schema": 2, "metrics": {')
    env = {"VICINAL_RESULTS_DIR": str(results), "VICINAL_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "80"}
    return tmp_path, results, env


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_catalogue(case, workspace):
    tmp, results, env = workspace
    if case.needs == "nonroot" and os.geteuid() == 0:
        pytest.skip("root reads files whatever their permissions")
    before = _snapshot(results)
    args = case.args(tmp)
    try:
        run = subprocess_cli if case.subprocess else cli
        outcome = run(*args, cwd=tmp, env={**env, **case.env})
    finally:
        if case.needs == "tmpfs":
            subprocess.run(["umount", "-l", str(tmp / "small")], capture_output=True)
    text = outcome.out + outcome.err
    assert outcome.code == case.code, text
    assert "Traceback" not in text
    assert case.message in outcome.err, outcome.err
    message_lines = [line for line in outcome.err.splitlines() if case.message in line]
    assert len(message_lines) == 1, outcome.err  # one line, not wrapped, whatever the terminal width
    assert not any(never in text for never in NEVER), text
    assert _snapshot(results) == before
    assert not (tmp / "PWNED").exists()
    if case.needs == "tmpfs":  # the failed write left no temporary file behind
        assert not list((tmp / "small").glob(".*")) if (tmp / "small").is_dir() else True


# ---------------------------------------------------------------- signals and concurrency (subprocesses)


def _popen(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vicinal.cli", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=interruptible,
    )


def _wait_for(pattern: str, folder: Path, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = (
            [p for p in sorted(folder.rglob(pattern)) if not p.name.startswith(".")]
            if folder.is_dir()
            else []
        )
        if found:  # a finished file, not a temporary one being written
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {pattern} under {folder} after {timeout} s")


LONGER = ["--methods", "erm", "--epochs", "3", "--limit-train", "256", "--evaluators", "clean", "--quiet"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_run_resumes_from_its_checkpoint(sig, workspace):
    tmp, results, env = workspace
    before = _snapshot(results)
    proc = _popen(["run", *LONGER], tmp, env)
    _wait_for("*.pt", tmp / "cache" / "checkpoints")  # the first epoch is saved
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "Traceback" not in err
        assert "Run the same command again to resume" in err
    assert _snapshot(results) == before
    again = subprocess_cli("run", *LONGER, cwd=tmp, env=env)
    assert again.code == 0, again.err
    (new,) = [p for p in results.rglob("*.json") if str(p) not in before and "broken" not in p.name]
    doc = json.loads(new.read_text())
    assert doc["training"]["resumed_from_epoch"] >= 1 and len(doc["training"]["history"]) == 3
    assert not list((tmp / "cache" / "checkpoints").glob(".*"))  # no temporary file left behind


def test_concurrent_identical_runs_leave_one_intact_file_per_run(workspace):
    tmp, results, env = workspace
    procs = [_popen(["run", *TINY], tmp, env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    files = list((results / "digits-c" / "erm").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["metrics"]["acc"] >= 0
    assert not list((results / "digits-c" / "erm").glob(".*"))


def test_a_run_that_raises_is_reported_and_the_others_are_kept(workspace):
    tmp, results, env = workspace
    plugin = tmp / "broken.py"
    plugin.write_text(
        textwrap.dedent(
            """
            from vicinal import Method, register_method

            @register_method("broken")
            class Broken(Method):
                def training_step(self, model, x, y, rng):
                    raise RuntimeError("this method is broken")
            """
        )
    )
    args = ["run", "--plugin", str(plugin), *TINY]
    args[args.index("erm")] = "broken,erm"
    out = subprocess_cli(*args, cwd=tmp, env=env)
    assert out.code == 1 and "Traceback" not in out.out + out.err
    assert "1 run(s) failed, 1 finished and kept" in out.err and "broken seed 0: RuntimeError" in out.err
    (detail,) = (tmp / "cache" / "errors").glob("*.txt")
    assert "this method is broken" in detail.read_text()  # the full traceback, for a bug report
    assert len(list((results / "digits-c" / "erm").glob("*.json"))) == 1  # erm ran after it and landed
    assert not (results / "digits-c" / "broken").exists()
    assert "suite: digits-c" in out.out  # the finished runs' leaderboard is still shown


def test_sweep_points_are_configurations_of_their_own(workspace):
    tmp, results, env = workspace
    suite = suite_file(
        tmp,
        BASE_SUITE.replace('methods = ["erm"]', 'methods = ["mixup"]').replace(
            'dataset = "digits"', 'dataset = "digits"\n    validation = 0.2'
        )
        + "[evaluators.clean]\n[sweep.mixup]\nalpha = [0.2, 1.0]\n",
    )
    args = ["run", "--suite", suite, "--epochs", "1", "--limit-train", "64", "--quiet"]
    out = cli(*args, cwd=tmp, env=env)
    assert out.code == 0, out.err
    docs = [json.loads(p.read_text()) for p in (results / "s" / "mixup").glob("*.json")]
    assert sorted(d["method_info"]["hyperparameters"]["alpha"] for d in docs) == [0.2, 1.0]
    assert len({d["run_id"] for d in docs}) == 2
    assert "mixup [alpha=0.2]" in out.out and "mixup [alpha=1.0]" in out.out
    # --best-of keeps the point with the better validation accuracy (ties: the first label), never asking
    # the test split; the legend says which and over what.
    val = {d["method_info"]["hyperparameters"]["alpha"]: d["metrics"]["val_acc"] for d in docs}
    chosen = max(sorted(val), key=lambda a: val[a])
    board = cli("leaderboard", "--suite", "s", "--best-of", "alpha", "--format", "json", cwd=tmp, env=env)
    assert board.code == 0, board.err
    (shown,) = json.loads(board.out)
    assert [r["label"] for r in shown["rows"]] == ["mixup"]
    assert shown["selection"][0].startswith(f"mixup: alpha={chosen} chosen by val_acc {val[chosen]:.4g}")
    refused = cli("leaderboard", "--best-of", "alpha", "--select", "acc", cwd=tmp, env=env)
    assert refused.code == 2 and "validation split" in refused.err and "Traceback" not in refused.err
    # The command line's sweep replaces the file's values for that setting; each value is validated.
    bad = cli(*args, "--sweep", "mixup.alpha=0.5,-1", cwd=tmp, env=env)
    assert bad.code == 2 and "alpha = -1.0 is out of range" in bad.err
    both = cli(*args, "--sweep", "mixup.alpha=0.5", "--set", "mixup.alpha=0.3", cwd=tmp, env=env)
    assert both.code == 2 and "both swept and set" in both.err


def test_a_diverging_loss_stops_that_run_with_advice(workspace):
    tmp, results, env = workspace
    plugin = tmp / "diverge.py"
    plugin.write_text(
        textwrap.dedent(
            """
            import torch.nn.functional as F
            from vicinal import Method, StepOutput, register_method

            @register_method("diverge")
            class Diverge(Method):
                def training_step(self, model, x, y, rng):
                    logits = model(x)
                    return StepOutput(F.cross_entropy(logits, y) * float("nan"), 0.0, len(y))
            """
        )
    )
    args = ["run", "--plugin", str(plugin), *TINY]
    args[args.index("erm")] = "diverge"
    out = subprocess_cli(*args, cwd=tmp, env=env)
    assert out.code == 1 and "Traceback" not in out.err
    assert "the training loss became nan at epoch 1" in out.err and "lower the learning rate" in out.err
    assert not (results / "digits-c" / "diverge").exists()


# ---------------------------------------------------------------- issue 22: wrong numbers without a word


def _board(tmp: Path, env: dict[str, str], *extra: str) -> tuple[Outcome, list[dict]]:
    out = cli("leaderboard", "--format", "json", *extra, cwd=tmp, env=env)
    assert out.code == 0 and "Traceback" not in out.err, out.err
    return out, json.loads(out.out)


def _edit(path: Path, **metrics: float) -> None:
    doc = json.loads(path.read_text())
    doc["metrics"].update(metrics)
    path.write_text(json.dumps(doc))  # json writes nan and inf as NaN and Infinity, as Python reads them


def test_two_files_of_one_run_and_seed_are_said_and_the_rule_is_in_the_legend(workspace):
    """A copied folder (or a hand-edited copy) silently replaced a run's numbers on the board (n = 1,
    acc 99.00 instead of the measured value)."""
    tmp, results, env = workspace
    original = sorted((results / "toy" / "m1").glob("*.json"))[0]  # mixup, seed 0
    copy = results / "toy" / "copy" / original.name
    copy.parent.mkdir()
    copy.write_bytes(original.read_bytes())
    _edit(copy, acc=0.99)
    os.utime(copy, (time.time() + 60, time.time() + 60))  # the copy is the newer file
    out, boards = _board(tmp, env)
    warnings = [line for line in out.err.splitlines() if "are the same run" in line]
    assert len(warnings) == 1 and str(original) in warnings[0] and str(copy) in warnings[0], out.err
    (row,) = [r for r in boards[0]["rows"] if r["method"] == "mixup"]
    assert row["n"] == 1 and row["metrics"]["acc"]["mean"] == 0.99  # the rule: the newest is shown
    assert "the one created last" in boards[0]["legend"]
    text = cli("leaderboard", cwd=tmp, env=env)
    assert "Two result files of one run and seed" in text.out
    # Without a duplicate, the legend says nothing about it.
    copy.unlink()
    assert "one run and seed" not in _board(tmp, env)[1][0]["legend"]


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_non_finite_metric_is_shown_said_and_never_marked_best(workspace, value):
    tmp, results, env = workspace
    bad = sorted((results / "toy" / "m0").glob("*.json"))[0]  # erm, seed 0 of 2
    _edit(bad, acc=value)
    out, boards = _board(tmp, env)
    said = [line for line in out.err.splitlines() if "is not a finite number" in line]
    assert len(said) == 1 and str(bad) in said[0] and f"acc = {value}" in said[0], out.err
    rows = {r["method"]: r for r in boards[0]["rows"]}
    cell = rows["erm"]["metrics"]["acc"]
    assert cell["mean"] is None and cell["non_finite"] == str(value) and cell["n"] == 2
    assert not any(r["metrics"]["acc"]["best"] or r["metrics"]["acc"]["tied"] for r in rows.values())
    assert boards[0]["marking"]["acc"]["rule"] == "non-finite"
    assert "no best marked in acc" in boards[0]["legend"]
    text = cli("leaderboard", "--format", "markdown", cwd=tmp, env=env).out
    (line,) = [x for x in text.splitlines() if x.startswith("| erm")]
    assert line.split("|")[5].strip() == str(value)  # shown as what it is, not as "—" (not measured)
    # A finite value elsewhere in the row is still ranked and marked.
    assert any(r["metrics"]["nll"]["best"] for r in rows.values())


def test_a_huge_value_is_shown_as_a_number_and_ranked_as_one(workspace):
    """1e308 displayed as "inf" (×100 for a percentage overflows) and the other row was marked best."""
    tmp, results, env = workspace
    for path in (results / "toy" / "m0").glob("*.json"):  # erm: every seed
        _edit(path, acc=1e308)
    out = cli("leaderboard", "--format", "markdown", cwd=tmp, env=env)
    (line,) = [x for x in out.out.splitlines() if x.startswith("| erm")]
    assert "1.00e+310" in line and "inf" not in line
    assert "**1.00e+310" in line  # erm has the higher acc: it is the best
    assert "is not a finite number" not in out.err


def test_a_symbolic_link_loop_inside_the_results_folder_is_passed_over(workspace):
    tmp, results, env = workspace
    _loop(results / "toy")
    _, boards = _board(tmp, env)
    assert {r["method"] for r in boards[0]["rows"]} == {"erm", "mixup"}


def test_artifacts_and_their_result_land_together_or_not_at_all(tmp_path, monkeypatch):
    """A full disk while the result was written left reliability.png without its JSON."""
    import errno

    from vicinal.core import io as vio
    from vicinal.core.errors import ResourceError
    from vicinal.store.results import Result, write_result

    real_open = open

    def full_disk(file, mode="r", *args, **kwargs):
        if "w" in mode and str(file).endswith(".json"):  # the figure fits; its result does not
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(vio, "open", full_disk, raising=False)
    result = Result("s", "erm", {"acc": 0.5}, seed=0, run_id="r" * 64, training_id="t" * 64)
    path = tmp_path / "s" / "erm" / "rrrr-seed0.json"
    with pytest.raises(ResourceError, match="no space left on"):
        write_result(path, result, beside={"rrrr-seed0.reliability.png": b"png" * 1000})
    assert list(path.parent.iterdir()) == []  # neither the figure nor any temporary
    monkeypatch.undo()
    write_result(path, result, beside={"rrrr-seed0.reliability.png": b"png"})
    assert sorted(p.name for p in path.parent.iterdir()) == ["rrrr-seed0.json", "rrrr-seed0.reliability.png"]


def test_a_diverging_loss_names_the_setting_that_is_not_finite():
    """A weight decay of inf gave NaN and the advice "lower the learning rate"."""
    import torch

    from vicinal.core.errors import VicinalError
    from vicinal.training.loop import check_finite_weights, finite_loss
    from vicinal.training.method import get_method
    from vicinal.training.recipe import Recipe

    erm = get_method("erm")()
    nan = torch.tensor(float("nan"))
    with pytest.raises(VicinalError, match=r"train\.weight_decay = inf is not a finite number"):
        finite_loss(nan, 1, "erm", 0, Recipe(weight_decay=float("inf")), erm)
    with pytest.raises(VicinalError, match=r"lower the learning rate \(train\.lr = 50\) or the weight decay"):
        finite_loss(nan, 1, "erm", 0, Recipe(lr=50.0), erm)
    model = torch.nn.Linear(2, 2)
    check_finite_weights(model, "erm", 0, Recipe(), erm)  # finite: nothing to say
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(VicinalError, match=r"erm: 1 weights became NaN or infinite at epoch 3; lower the"):
        check_finite_weights(model, "erm", 2, Recipe(), erm)


def test_weights_that_overflow_on_the_last_step_stop_the_run(workspace):
    """A huge but finite weight decay (1e30) passed every check: the epoch's loss is read before each
    step's update, so the last step's NaN weights reached the evaluators, and the run wrote a result
    with 10 % accuracy and NaN NLL that the board marked best."""
    tmp, results, env = workspace
    args = ["run", "--suite", _suite(tmp, train="weight_decay = 1e30\n"), *TINY]
    out = subprocess_cli(*args, cwd=tmp, env=env)
    assert out.code == 1 and "Traceback" not in out.err, out.err
    err = " ".join(out.err.split())
    assert "NaN or infinite" in err and "weight decay" in err, err
    assert not list(results.rglob("digits*/erm/*.json"))


def test_a_helper_module_edit_retrains_a_plugin_method(workspace):
    """A --plugin method imports `from mylib import FACTOR`; editing mylib (FACTOR 1 → 50) was reused as
    "same configuration, data and code" and only --force showed NLL 2.3 → 2175.9."""
    tmp, results, env = workspace
    (tmp / "mylib.py").write_text("FACTOR = 1\n")
    plugin = tmp / "scaled.py"
    plugin.write_text(
        textwrap.dedent(
            """
            import torch.nn.functional as F
            from mylib import FACTOR
            from vicinal import Method, StepOutput, register_method

            @register_method("scaled")
            class Scaled(Method):
                def training_step(self, model, x, y, rng):
                    return StepOutput(F.cross_entropy(model(x) * FACTOR, y), 0.0, len(y))
            """
        )
    )
    args = ["run", "--plugin", str(plugin), *TINY]
    args[args.index("erm")] = "scaled"
    env = {**env, "PYTHONPATH": str(tmp)}
    assert subprocess_cli(*args, cwd=tmp, env=env).code == 0
    (tmp / "mylib.py").write_text("FACTOR = 50  # a comment and a new value\n")
    again = subprocess_cli(*args, cwd=tmp, env=env)
    assert again.code == 0 and "1 trained, 0 reused" in again.out, again.out + again.err
    docs = [json.loads(p.read_text()) for p in (results / "digits-c" / "scaled").glob("*.json")]
    assert len({d["training_id"] for d in docs}) == 2
    assert all("mylib" in d["environment"]["code"]["method"]["files"] for d in docs)


def test_a_damaged_corrupted_set_is_refused_before_training(workspace):
    """A truncated or altered -C .npy was found only after training (exit 1)."""
    tmp, _, env = workspace
    folder = tmp / "digits-C"
    made = cli("corrupt", "--dataset", "digits", "--corruptions", "fog", "--severities", "1", "--quiet",
               "--out", str(folder), cwd=tmp, env=env)  # fmt: skip
    assert made.code == 0, made.err
    fog = folder / "fog.npy"
    flipped = bytearray(fog.read_bytes())
    flipped[-1] ^= 0xFF
    fog.write_bytes(bytes(flipped))
    (folder / ".vicinal-verified.json").unlink()
    suite = _suite(
        tmp,
        extra=f'[evaluators.corruption]\nsource = "disk"\npath = "{folder}"\ncorruptions = ["fog"]\n'
        "severities = [1]\n",
    )
    out = cli("run", "--suite", suite, "--epochs", "1", "--limit-train", "64", "--quiet", cwd=tmp, env=env)
    assert out.code == 2 and "Traceback" not in out.err, out.err
    assert "fog.npy: its MD5 is" in out.err and "the MD5 manifest.json recorded when vicinal wrote" in out.err
    assert "published" not in out.err  # the manifest's own checksum is not the release's
    assert not (tmp / "cache" / "checkpoints").exists()  # nothing was trained
    fog.write_bytes(bytes(flipped)[:5000])  # truncated: its shape no longer fits
    out = cli("run", "--suite", suite, "--epochs", "1", "--limit-train", "64", "--quiet", cwd=tmp, env=env)
    assert out.code == 2 and "fog.npy" in out.err and not (tmp / "cache" / "checkpoints").exists(), out.err


def _interrupt_when(
    args: list[str], ready: Callable[[list[str]], bool], tmp: Path, env: dict[str, str], sig: int
) -> tuple[int, str, str]:
    """Run ``vicinal ARGS``, send ``sig`` once ``ready(stdout lines so far)``; (exit code, out, err)."""
    import threading

    proc = _popen(args, tmp, env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while not ready(lines):
        assert time.monotonic() < deadline and proc.poll() is None, (lines, proc.stderr.read())
        time.sleep(0.05)
    os.kill(proc.pid, sig)
    err = proc.stderr.read()
    proc.wait(timeout=120)
    reader.join(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    return proc.returncode, "".join(lines), err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_corrupt_says_what_it_kept_and_leaves_no_temporary(workspace, sig):
    """Ctrl-C in `vicinal corrupt` exited 130 without a word; a killed one left a 15 MB temporary."""
    tmp, _, env = workspace
    out_dir = tmp / "digits-C"
    # gaussian noise takes a moment, glass blur (the slowest) long enough to be interrupted in.
    args = ["corrupt", "--dataset", "digits", "--corruptions", "gaussian_noise,glass_blur", "--quiet",
            "--out", str(out_dir)]  # fmt: skip
    manifest = out_dir / "manifest.json"

    def one_finished(_: list[str]) -> bool:
        return manifest.is_file() and "gaussian_noise" in manifest.read_text()

    code, _, err = _interrupt_when(args, one_finished, tmp, env, sig)
    if sig == signal.SIGINT:
        assert code == 130 and "Traceback" not in err, err
        assert "corruptions are finished and kept in" in err and "run the same command again" in err
    else:
        assert code == -signal.SIGKILL
    assert not [p.name for p in out_dir.glob(".*") if p.name != ".vicinal-verified.json"]
    finished = json.loads((out_dir / "manifest.json").read_text())["md5"]
    assert {p.stem for p in out_dir.glob("*.npy")} == set(finished)  # every file there is a finished one
    assert all(oct(p.stat().st_mode & 0o777) != "0o600" for p in out_dir.glob("*.npy"))  # not private


def test_an_interrupted_evaluate_says_nothing_was_written(workspace):
    tmp, results, env = workspace
    import torch

    from vicinal.training.models import MODELS

    torch.save(MODELS.get("small-cnn")(10, [0.5] * 3, [0.25] * 3).state_dict(), tmp / "m.pt")
    suite = _suite(tmp, extra='[evaluators.clean]\n[evaluators.corruption]\ncorruptions = ["glass_blur"]\n')
    args = ["evaluate", "--suite", suite, "--checkpoint", str(tmp / "m.pt"), "--model", "small-cnn",
            "--name", "ext"]  # fmt: skip
    # Interrupted once the clean evaluator is done, while the corrupted set is made and evaluated.
    code, _, err = _interrupt_when(args, lambda out: any("clean" in x for x in out), tmp, env, signal.SIGINT)
    assert code == 130 and "Traceback" not in err and "interrupted:" in err, err
    assert "run the same command again" in err.lower()
    assert not (results / "s" / "ext").exists()


def test_ctrl_c_while_exiting_is_not_swallowed(tmp_path):
    """A Ctrl-C that lands in an exit hook (torch registers several) printed "Exception ignored …
    KeyboardInterrupt" and exited 0, once in five runs. A slow hook stands in for torch's here."""
    code = textwrap.dedent(
        """
        import atexit, sys, time
        atexit.register(lambda: (print("in an exit hook", flush=True), time.sleep(30)))
        sys.argv = ["vicinal", "suites"]
        from vicinal.cli import main
        main()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)  # fmt: skip
    for line in proc.stdout:
        if "in an exit hook" in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Exception ignored" not in err and "Traceback" not in err
    assert "interrupted while exiting; the command had finished" in err
