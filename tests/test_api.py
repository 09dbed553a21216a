"""The Python API as a notebook meets it: ``vicinal.run``/``vicinal.evaluate`` apply the command line's
thread policy (before torch is imported: count and passive waiting; after: the count, and the record says
the waiting is OpenMP's default), and ``help()`` on each public function shows its real signature and a
docstring that names every argument."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys

import pytest

import vicinal

#: A run that fails validation after the thread policy is applied, so no training is needed to see it.
PROBE = """
import json, os, sys
{before}
import vicinal
try:
    {call}
except vicinal.VicinalError:
    pass
import torch
from vicinal.host.threads import thread_environment
print(json.dumps({{"env": {{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}},
                  "torch": torch.get_num_threads(), "record": thread_environment()}}))
"""

CALLS = {
    "run": 'vicinal.run("digits", methods=["no-such-method"], threads=1)',
    # A zoo entry: an nn.Module would need torch imported first.
    "evaluate": 'vicinal.evaluate(robustbench="Standard", suite="no-such-suite", threads=1)',
}


def _probe(call: str, torch_first: bool) -> dict:
    before = "import torch" if torch_first else ""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "VICINAL_THREADS"))}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(before=before, call=call)],
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("function", ["run", "evaluate"])
def test_before_torch_the_api_applies_the_whole_policy_and_records_it(function):
    got = _probe(CALLS[function], torch_first=False)
    assert got["env"] == {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    assert got["torch"] == 1
    record = got["record"]
    assert (record["threads"], record["source"], record["wait_source"]) == (1, "threads=", "vicinal")
    assert record["before_torch"] is True and record["intra_op_threads"] == 1


@pytest.mark.parametrize("function", ["run", "evaluate"])
def test_after_torch_the_api_sets_the_count_and_records_openmps_waiting(function):
    got = _probe(CALLS[function], torch_first=True)
    assert got["env"]["OMP_WAIT_POLICY"] is None  # too late to choose: libgomp is loaded
    assert got["torch"] == 1
    record = got["record"]
    assert (record["threads"], record["source"], record["wait_source"]) == (1, "threads=", "openmp default")
    assert record["before_torch"] is False and record["omp_wait_policy"] is None


@pytest.mark.parametrize("name", ["run", "evaluate", "leaderboard", "compare"])
def test_each_public_function_shows_its_signature_and_documents_every_argument(name):
    function = getattr(vicinal, name)
    assert inspect.isfunction(function)  # not a module: help() shows the function, not a module docstring
    parameters = list(inspect.signature(function).parameters)
    assert parameters and "args" not in parameters and "kwargs" not in parameters
    doc = inspect.getdoc(function) or ""
    args = doc.split("Args:", 1)[1].split("Raises:", 1)[0] if "Args:" in doc else ""
    # Each argument is named at the start of an entry ("name:" or "name, other, …:").
    documented = {w for line in args.splitlines() for w in re.findall(r"^\s{4}([\w, ]+):", line)}
    named = {n.strip() for entry in documented for n in entry.split(",")}
    assert set(parameters) <= named, f"{name}: undocumented {sorted(set(parameters) - named)}"


def test_the_run_signature_takes_threads_like_the_command_line():
    assert inspect.signature(vicinal.run).parameters["threads"].default is None
    assert inspect.signature(vicinal.evaluate).parameters["threads"].default is None
