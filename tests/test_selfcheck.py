"""``vicinal selfcheck``: the quick check passes on this CPU through the real command line, and its CUDA
branches (a calibrated resume tolerance, the host-sync count, the device-against-CPU comparison, the
half-GPU Ray tasks) are forced on the CPU and shown to catch what they are for."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import CIFAR_DIR, needs_cifar, run_cli

import vicinal.execution.selfcheck as selfcheck
from vicinal.execution.selfcheck import FAILED, OK, QUICK, SKIPPED

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return selfcheck.selfcheck_data(None, dataclasses.replace(QUICK, n_train=128, n_test=64))


@pytest.fixture
def cuda_branches(monkeypatch):
    """The CUDA-only parts of the checks, on the CPU."""
    monkeypatch.setattr(selfcheck, "is_cuda", lambda device: True)


def test_the_quick_check_passes_on_the_cpu(tmp_path):
    env = {"VICINAL_DATA_DIR": str(tmp_path / "no-data"), "VICINAL_CACHE_DIR": str(tmp_path / "cache")}
    out = run_cli("selfcheck", "--device", "cpu", "--quick", cwd=tmp_path, env=env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "synthetic images" in lines[0] and "quick check" in lines[0]
    status = {line.split(":")[0].split()[-1]: line.split()[0] for line in lines if line[:9].strip()}
    assert {k: status.get(k) for k in ("throughput", "syncs", "resume", "evaluation", "ray")} == {
        "throughput": "ok",
        "syncs": "skipped",
        "resume": "ok",
        "evaluation": "ok",
        "ray": "skipped",
    }
    for method in ("erm", "mixup", "manifold-mixup", "cutmix", "varmixup", "varmixup-beta"):
        assert any(line.split()[:1] == [method] for line in lines), method
    assert "must be bitwise equal on the CPU" in out.stdout and lines[-1] == "selfcheck passed"


@needs_cifar
def test_the_cifar_images_are_used_where_the_data_folder_holds_them():
    found = selfcheck.selfcheck_data(CIFAR_DIR, QUICK)
    assert found.name == "cifar10" and len(found.train) + len(found.val) == QUICK.n_train
    assert len(found.test) == QUICK.n_test


def test_synthetic_images_can_be_learned(data):
    """Their classes differ in colour pattern: a model's logits mean something in the evaluation check."""
    means = torch.stack([data.train.images[data.train.labels == c].float().mean(0) for c in range(10)])
    assert torch.cdist(means.flatten(1), means.flatten(1)).fill_diagonal_(1e9).min() > 100


# ---------------------------------------------------------------- resume


def test_resume_on_cuda_is_judged_against_two_uninterrupted_runs(data, tmp_path, cuda_branches):
    check, model = selfcheck.check_resume(data, CPU, QUICK, tmp_path)
    assert check.status == OK, check
    assert "two uninterrupted runs differ by 0.00e+00" in "\n".join(check.lines)
    assert "tolerance 1.00e-05" in "\n".join(check.lines) and isinstance(model, torch.nn.Module)


@pytest.mark.parametrize("cuda", [False, True])
def test_a_resume_that_loses_its_random_state_fails(cuda, data, tmp_path, monkeypatch):
    from vicinal.training.rng import RunRandom

    monkeypatch.setattr(selfcheck, "is_cuda", lambda device: cuda)
    monkeypatch.setattr(RunRandom, "load_state", lambda self, state: None)
    check, _ = selfcheck.check_resume(data, CPU, QUICK, tmp_path)
    assert check.status == FAILED and "away from the uninterrupted run's" in check.summary


# ---------------------------------------------------------------- host syncs


def test_host_syncs_are_counted_on_cuda_only(data):
    assert selfcheck.check_host_syncs(data, CPU, QUICK, {}).status == SKIPPED


def test_a_method_that_syncs_every_step_is_named(data, cuda_branches, monkeypatch):
    """The sync debug mode warns at every host sync; here a method warns as it would."""
    from vicinal.training.method import get_method

    erm = get_method("erm")
    debug = {"mode": "default"}

    class Leaky(erm):
        def training_step(self, model, x, y, rng):
            if debug["mode"] != "default":
                warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
            return super().training_step(model, x, y, rng)

    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: debug.update(mode=mode))
    trained = {"erm": selfcheck.Trained(erm(), 1.0, 1.0), "leaky": selfcheck.Trained(Leaky(), 1.0, 1.0)}
    check = selfcheck.check_host_syncs(data, CPU, QUICK, trained)
    assert check.status == FAILED and check.summary.startswith("leaky wait for the GPU in every step")
    rows = {line.split()[0]: line.split()[1:] for line in check.lines[1:]}
    assert rows == {"erm": ["0", "0"], "leaky": ["1", "2"]}  # one warning per step: 1 step, then 2


# ---------------------------------------------------------------- evaluation


def test_the_device_evaluation_must_match_the_cpus(data):
    model = selfcheck.fresh_model(data, QUICK, CPU, 0)
    cpu = selfcheck.evaluate_on(model, data, CPU, QUICK)
    again = selfcheck.evaluate_on(model, data, CPU, QUICK)
    assert selfcheck.compare_evaluations(cpu, again, exact=True).status == OK
    # bfloat16 logits, as CUDA's evaluation computed them before: caught even where the metrics agree.
    bf16 = dataclasses.replace(again, device="cuda:0", logits=again.logits.to(torch.bfloat16).double())
    check = selfcheck.compare_evaluations(cpu, bf16, exact=False)
    assert check.status == FAILED and check.summary == "logits differ beyond tolerance"
    # Float32 rounding on another device is within tolerance, and nothing is within 0 on the CPU.
    near = dataclasses.replace(again, device="cuda:0", logits=again.logits + 1e-6)
    assert selfcheck.compare_evaluations(cpu, near, exact=False).status == OK
    assert selfcheck.compare_evaluations(cpu, near, exact=True).status == FAILED
    shifted = dataclasses.replace(near, metrics={**near.metrics, "acc": near.metrics["acc"] + 0.02})
    assert selfcheck.compare_evaluations(cpu, shifted, exact=False).summary == "acc differ beyond tolerance"


# ---------------------------------------------------------------- ray


@pytest.mark.skipif(__import__("importlib").util.find_spec("ray") is None, reason="ray is not installed")
@pytest.mark.parametrize(("made_on", "status"), [("cuda:0", OK), ("cpu", FAILED)])
def test_two_half_gpu_ray_tasks(made_on, status, tmp_path, cuda_branches, monkeypatch):
    from vicinal.execution.outcomes import RunOutcome
    from vicinal.execution.ray import RayExecutor

    planned = []

    def execute(plan):
        planned.append(plan)
        return [RunOutcome("erm", s, Path(f"r{s}.json"), "trained", {}) for s in plan.suite.seeds]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a local cluster with a GPU
    monkeypatch.setattr(selfcheck, "execute", execute)
    monkeypatch.setattr(
        selfcheck, "read_result", lambda path: SimpleNamespace(environment={"device": {"type": made_on}})
    )
    check = selfcheck.check_ray(torch.device("cuda"), tmp_path)
    assert check.status == status, check
    (plan,) = planned
    assert isinstance(plan.executor, RayExecutor) and plan.executor.gpus_per_run == 0.5
    assert plan.device is None and plan.options.device == "cuda" and plan.suite.seeds == [0, 1]
