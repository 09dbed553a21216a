"""Evaluate a model that vicinal did not train, under a suite's protocol (``vicinal evaluate``).

The model comes as a checkpoint of a registered architecture, as any ``nn.Module`` from Python, or from
RobustBench's model zoo (:mod:`vicinal.external.robustbench`). It is measured by exactly the suite's
evaluators — the same code path as vicinal's own runs (:func:`vicinal.execution.jobs.run_evaluators`), the
same data splits, subsets, seeds, radii, bins and the temperature fitted on the same validation split — and
written as a normal result file, marked as evaluated (``Result.evaluated``: where the model came from), so it
sits on the leaderboard and in the report beside the trained methods.

**Input convention.** The model receives float32 images N×C×H×W in [0, 1] (RobustBench's convention) and
normalises inside, as vicinal's own models do. A model that expects standardised inputs is wrapped: pass
``normalize`` (``"suite"``: the suite's training-set statistics; ``"MEAN/STD"``; or ``(mean, std)``), and
vicinal puts a :class:`~vicinal.training.models.Normalize` layer in front of it (recorded, and part of the
weights' hash). A wrong number of classes or input size is one error before any evaluation: the model is
probed with one batch of two test images.

**Identity.** ``training_id`` is a hash of the weights (every tensor of the state dict, buffers included,
with its name, dtype and shape), the class and code that run them, and the suite's data — so evaluating the
same weights again under the same evaluators reuses the result file, and different weights never share a
leaderboard row. ``run_id`` adds the evaluators' settings and code, as for trained runs.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vicinal.core.errors import VicinalError
from vicinal.core.fingerprints import fingerprint, vicinal_version
from vicinal.core.io import load_plain
from vicinal.core.names import check_name
from vicinal.data.datasets import DataSplits, resolve_data_dir, to_unit
from vicinal.evaluation.evaluator import EvalContext
from vicinal.execution.identity import RunIdentity, evaluation_identity, reusable_result
from vicinal.execution.jobs import RunData, configure_determinism, run_evaluators
from vicinal.execution.plan import RunPlan
from vicinal.host.environment import environment
from vicinal.store.results import SCHEMA_VERSION, Result, result_path, write_result
from vicinal.training.models import MODELS, Normalize

INPUT = "float32 images N×C×H×W in [0, 1] (RobustBench's convention)"
NORMALIZE_HELP = (
    "--normalize MEAN/STD (e.g. 0.4914,0.4822,0.4465/0.2470,0.2435,0.2616), --normalize suite (the suite's "
    "training-set statistics, what vicinal's own training uses) or --normalize none (the model was trained "
    "on images in [0, 1])"
)

#: A normalisation request: None (nothing), "suite", "none", or explicit (mean, std).
NormalizeSpec = str | tuple[Sequence[float], Sequence[float]] | None


@dataclass
class GivenModel:
    """A model to evaluate and where it came from (recorded in the result's ``evaluated`` block)."""

    model: nn.Module
    origin: dict[str, Any]
    #: Code identity of the module defining the model's class (:func:`vicinal.core.fingerprints.fingerprint`).
    code: dict[str, Any] | None = None


class _Normalized(nn.Module):
    """``normalize`` then the given model: for a model that expects standardised inputs."""

    def __init__(self, normalize: Normalize, model: nn.Module):
        super().__init__()
        self.normalize = normalize
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))


# ---------------------------------------------------------------- hashes


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 of a model's state dict: every tensor (parameters and buffers) with its name, dtype and
    shape, in name order. Independent of the device and of how the weights were loaded."""
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def code_of(cls: type) -> dict[str, Any] | None:
    """The fingerprint of the code defining ``cls`` (without the per-file list), or None where it cannot be
    read (a class typed into an interpreter has no source file)."""
    try:
        code = fingerprint(cls)
    except (OSError, SyntaxError, TypeError, AttributeError):
        return None
    return {k: v for k, v in code.items() if k != "files"}


# ---------------------------------------------------------------- normalisation


def parse_normalize(value: Any) -> NormalizeSpec:
    """``None``, ``"suite"``, ``"none"``, ``"m1,m2,m3/s1,s2,s3"`` or ``(mean, std)`` → a spec; anything else
    is an error saying what is accepted."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text in ("suite", "none"):
            return text
        mean, slash, std = text.partition("/")
        if slash:
            try:
                return _checked([float(v) for v in mean.split(",")], [float(v) for v in std.split(",")])
            except ValueError:
                pass
        raise VicinalError(f"--normalize {value!r}: use {NORMALIZE_HELP}")
    if isinstance(value, tuple | list) and len(value) == 2:
        try:
            return _checked([float(v) for v in value[0]], [float(v) for v in value[1]])
        except (TypeError, ValueError):
            pass
    raise VicinalError(f"normalize={value!r}: give (mean, std) sequences, 'suite', 'none' or 'MEAN/STD'")


def _checked(mean: list[float], std: list[float]) -> tuple[list[float], list[float]]:
    if not mean or len(mean) != len(std):
        raise VicinalError(
            f"--normalize: {len(mean)} means but {len(std)} stds; give one of each per channel"
        )
    if not all(math.isfinite(v) for v in [*mean, *std]):
        raise VicinalError(f"--normalize: means and standard deviations must be finite, got {mean}/{std}")
    if any(s <= 0 for s in std):
        raise VicinalError(f"--normalize: standard deviations must be positive, got {std}")
    return mean, std


def _resolve(spec: NormalizeSpec, rd: RunData, channels: int) -> tuple[list[float], list[float], str]:
    """(mean, std, where they come from) for a spec that is not None."""
    if spec == "suite":
        return list(rd.mean), list(rd.std), "the suite's training images (as vicinal's own training)"
    if spec == "none":
        return [0.0] * channels, [1.0] * channels, "none: the model takes images in [0, 1]"
    assert isinstance(spec, tuple)
    mean, std = list(spec[0]), list(spec[1])
    if len(mean) != channels:
        raise VicinalError(f"--normalize gives {len(mean)} channel(s); the suite's images have {channels}")
    return mean, std, "given (--normalize)"


# ---------------------------------------------------------------- where models come from


def from_module(model: Any, normalize: Any, rd: RunData) -> GivenModel:
    """Any ``nn.Module`` from Python; wrapped in a :class:`Normalize` layer when ``normalize`` asks."""
    if not isinstance(model, nn.Module):
        raise VicinalError(
            f"evaluate: model is a {type(model).__name__}; give an nn.Module, or a checkpoint path with "
            "architecture="
        )
    cls = type(model)
    spec = parse_normalize(normalize)
    channels = rd.splits.image_shape[0]
    if spec is None:
        wrapped, normalisation = model, {"from": "none applied by vicinal (the model normalises inside)"}
    else:
        mean, std, where = _resolve(spec, rd, channels)
        wrapped = _Normalized(Normalize(mean, std), model)
        normalisation = {"mean": mean, "std": std, "from": where}
    origin = {
        "kind": "python object",
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "architecture": cls.__name__,
        "normalisation": normalisation,
    }
    return GivenModel(wrapped, origin, code_of(cls))


def state_dict_of(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict inside a loaded checkpoint, and which layout it had."""

    def tensors(d: Any) -> bool:
        return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())

    if tensors(obj):
        return dict(obj), "state dict"
    if isinstance(obj, dict):
        # Common wrappers: "model" is vicinal's training checkpoint, "last" some RobustBench zoo checkpoints'.
        for key in ("state_dict", "model", "last"):
            if tensors(obj.get(key)):
                return dict(obj[key]), f"state dict under {key!r}"
    what = (
        f"a dict with keys {', '.join(map(str, list(obj)[:6]))}"
        if isinstance(obj, dict)
        else type(obj).__name__
    )
    raise VicinalError(
        f"{path} holds {what}, not a state dict; save one with torch.save(model.state_dict(), path)"
    )


def _fit_report(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """What keeps ``state`` from loading into ``model`` strictly: missing, unexpected, mis-shaped keys."""
    expected = model.state_dict()
    problems = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} is {tuple(state[k].shape)} in the checkpoint, {tuple(expected[k].shape)} in the model"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing:
        problems.append(
            f"missing {len(missing)} key(s) ({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''})"
        )
    if unexpected:
        more = ", …" if len(unexpected) > 3 else ""
        problems.append(f"{len(unexpected)} unexpected key(s) ({', '.join(unexpected[:3])}{more})")
    problems += shapes[:3]
    return problems


def load_checkpoint(path: str | Path, architecture: str, normalize: Any, rd: RunData) -> GivenModel:
    """A registered architecture with the state dict in ``path`` (``torch.load(weights_only=True)``: a
    checkpoint can hold only tensors and plain values, so loading it cannot run code).

    vicinal's architectures normalise in their first layer (``normalize.mean`` / ``normalize.std``
    buffers). A checkpoint saved from a vicinal model carries them; a plain (torchvision-style) state dict
    does not, and then ``normalize`` must say how the model's inputs were standardised in training —
    there is no silent default, since a wrong guess changes every number."""
    file = Path(path).expanduser()  # its existence is checked by vicinal.evaluate, before any loading
    factory = MODELS.get(architecture)  # an unknown name is one error listing the registered ones
    try:
        obj = load_plain(file, map_location="cpu")
    except ValueError as exc:
        raise VicinalError(
            f"{file} {exc}; vicinal loads plain state dicts only: save one with "
            "torch.save(model.state_dict(), path)"
        ) from None
    state, layout = state_dict_of(obj, file)
    if all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
        layout += ', "module." prefix removed (nn.DataParallel)'
    spec = parse_normalize(normalize)
    channels = rd.splits.image_shape[0]
    carries = "normalize.mean" in state and "normalize.std" in state
    if carries and spec is not None:
        raise VicinalError(
            f"{file} carries its own normalisation (normalize.mean / normalize.std buffers); drop --normalize"
        )
    if carries:
        mean = state["normalize.mean"].flatten().tolist()
        std = state["normalize.std"].flatten().tolist()
        normalisation = {"mean": mean, "std": std, "from": "the checkpoint (normalize.mean / normalize.std)"}
    elif spec is None:
        raise VicinalError(
            f"{file} has no normalize.mean / normalize.std buffers: vicinal's {architecture} standardises "
            f"its inputs in its first layer, so say how this model's inputs were standardised in training: "
            f"{NORMALIZE_HELP}"
        )
    else:
        mean, std, where = _resolve(spec, rd, channels)
        state["normalize.mean"] = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        state["normalize.std"] = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        normalisation = {"mean": mean, "std": std, "from": where}
    model = factory(num_classes=rd.splits.num_classes, mean=mean, std=std)
    problems = _fit_report(model, state)
    if problems:
        raise VicinalError(
            f"{file} does not fit {architecture} with the suite's {rd.splits.num_classes} classes: "
            + "; ".join(problems)
        )
    model.load_state_dict(state, strict=True)
    origin = {
        "kind": "checkpoint",
        "checkpoint": str(file.resolve()),
        "sha256": file_sha256(file),
        "layout": layout,
        "architecture": architecture,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "normalisation": normalisation,
    }
    return GivenModel(model, origin, code_of(factory))


# ---------------------------------------------------------------- probing and evaluating


def probe(given: GivenModel, data: DataSplits, device: torch.device) -> None:
    """One batch of two test images through the model: a model that cannot take the suite's images or
    gives the wrong number of classes is one clear error here, before any evaluation."""
    c, h, w = data.image_shape
    what = f"model {given.origin.get('architecture', '?')}"
    x = to_unit(data.test.images[:2], device)
    model = given.model.to(device).eval()
    try:
        with torch.inference_mode():
            out = model(x)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise VicinalError(
            f"{what} fails on a batch of 2 {data.name} test images ({INPUT}, 2×{c}×{h}×{w}): "
            f"{type(exc).__name__}: {first}. It must take the suite's images as they are ({c} channels, "
            f"{h}×{w} px)"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise VicinalError(f"{what} returns a {type(out).__name__}; it must return a tensor of logits")
    if out.ndim != 2 or out.shape[0] != 2 or out.shape[1] != data.num_classes:
        raise VicinalError(
            f"{what} returns shape {tuple(out.shape)} for 2 images; {data.name} has {data.num_classes} "
            f"classes, so it must return 2×{data.num_classes} logits"
        )
    if not out.is_floating_point():
        raise VicinalError(f"{what} returns {out.dtype} values; it must return floating-point logits")


def identity_of(given: GivenModel, plan: RunPlan, rd: RunData) -> RunIdentity:
    """The evaluated model's identity: its weights (and the class and code that run them) on the suite's
    data, then the evaluation protocol as for a trained run."""
    training = {
        "schema": SCHEMA_VERSION,
        "evaluated": True,
        "weights_sha256": given.origin["weights_sha256"],
        "model": given.origin.get("class"),
        "model_code": (given.code or {}).get("fingerprint"),
        "data_fingerprint": rd.fingerprint,
    }
    return RunIdentity(training, evaluation_identity(plan.suite, plan.evaluators), plan.suite.name)


def check_evaluated_name(name: str) -> str:
    """A name for an evaluated model: a valid name that is not a registered method (its rows would be
    mistaken for that method's, and a method's folder would hold both)."""
    from vicinal.training.method import METHODS

    check_name(name, "model")
    if name in METHODS.names():
        raise VicinalError(
            f"--name {name}: that is a registered method; give the evaluated model a name of its own "
            f"(e.g. {name}-external)"
        )
    return name


def evaluate_given(given: GivenModel, name: str, plan: RunPlan, rd: RunData) -> tuple[Result, str]:
    """Evaluate ``given`` under the plan's suite and evaluators and write its result file (or reuse the one
    written for the same weights, evaluators and code). Returns the result and "evaluated" or "reused"."""
    check_evaluated_name(name)
    suite, data, reporter = plan.suite, rd.splits, plan.reporter
    given.origin["weights_sha256"] = weights_sha256(given.model)
    given.origin["input"] = INPUT
    identity = identity_of(given, plan, rd)
    path = result_path(plan.results_dir, suite.name, name, identity.run_id, 0)
    existing = None if plan.force else reusable_result(path, identity)
    if existing is not None:
        reporter.note(
            f"reusing {path}: same weights ({given.origin['weights_sha256'][:12]}), data, evaluators and "
            "code; --force recomputes"
        )
        return existing, "reused"
    probe(given, data, plan.device)
    device = plan.device
    deterministic = configure_determinism(device)  # as in vicinal's own runs
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vicinal-artifacts-") as staging:
        stem = Path(staging) / path.stem
        ctx = EvalContext(
            given.model.to(device),
            data,
            device,
            suite.eval_batch_size,
            artifact_stem=stem,
            title=f"{suite.name} · {name} (evaluated)",
            seed=0,
            data_dir=resolve_data_dir(plan.data_dir),
            cache_dir=plan.cache_dir,
            reporter=reporter,
            label=f"{name} (evaluated)",
        )
        evaluated = run_evaluators(ctx, plan.evaluators, identity.evaluation, ctx.label, reporter)
        artifacts = {file: (Path(staging) / file).read_bytes() for file in ctx.artifacts.values()}
    result = Result(
        **evaluated.result_fields(
            suite.name, name, 0, identity.run_id, identity.training_id, ctx, evaluated.described
        ),
        method_info={
            "name": name,
            "summary": "evaluated as given: not trained by vicinal",
            "architecture": given.origin.get("architecture"),
        },
        # Only what applies to a model vicinal did not train: no training recipe, model or epochs.
        suite_spec={
            "name": suite.name,
            "description": suite.description,
            "dataset": suite.dataset,
            "validation": suite.validation,
            "eval_batch_size": suite.eval_batch_size,
            "baseline": suite.run.baseline,
            "evaluators": {n: e["settings"] for n, e in identity.evaluation["evaluators"].items()},
        },
        data=rd.result_data(trained=False),
        training={},
        environment={
            **environment(device),
            "deterministic": deterministic,
            "code": {"vicinal": vicinal_version(), "model": given.code or {}},
        },
        timing={"eval_s": round(evaluated.seconds, 2), "wall_s": round(time.perf_counter() - wall, 2)},
        evaluated=dict(given.origin),
    )
    write_result(path, result, beside=artifacts)  # together: all land or none
    result.path = path
    reporter.note(
        f"{name}: evaluated ({given.origin['kind']}, weights {given.origin['weights_sha256'][:12]}) → {path}"
    )
    return result, "evaluated"
