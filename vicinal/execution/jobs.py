"""One run — (configuration, seed) — as a self-contained job: train, evaluate, draw the preview.

This is the worker's side of a run. A :class:`RunJob` holds everything but the data (which the executor
passes separately, loaded once), so it can be sent to another process or machine; :func:`run_job` returns
the result and the bytes of its artifacts instead of writing them, and the driver stores both in the one
results folder. Nothing here decides what to run or whether a result can be reused: see ``runner``.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from vicinal.core.reporting import Reporter
from vicinal.data.datasets import DataSplits, to_unit
from vicinal.evaluation.evaluator import EXAMPLES, EvalContext, Evaluator
from vicinal.execution.suite import Suite
from vicinal.host.devices import evaluation_precision, resolve_device, training_precision
from vicinal.host.environment import environment
from vicinal.host.startup import defer_dynamo, set_deterministic
from vicinal.store.declarations import Artifact, Declarations, MetricInfo
from vicinal.store.outcomes import ARTIFACT
from vicinal.store.results import Result, config_hash
from vicinal.training.loop import train
from vicinal.training.method import Method, PrepareContext
from vicinal.training.models import build_model
from vicinal.training.rng import RunRandom, seed_everything


@dataclass
class RunData:
    """The suite's data, loaded once for every (method, seed)."""

    splits: DataSplits
    fingerprint: str
    mean: list[float]
    std: list[float]

    def result_data(self, *, trained: bool = True) -> dict[str, Any]:
        """The result file's ``data`` block: for a model vicinal trained, or (``trained=False``) one
        evaluated as given, which never saw the training split or its normalisation statistics."""
        data = self.splits
        block: dict[str, Any] = {
            "dataset": data.name,
            "source": data.source,
            "n_train": len(data.train),
            "n_val": len(data.val) if data.val is not None else 0,
            "n_test": len(data.test),
            "num_classes": data.num_classes,
            "image_shape": list(data.image_shape),
            "fingerprint": self.fingerprint,
            "normalisation": {"mean": self.mean, "std": self.std, "from": "training images"},
            **data.info,
        }
        if not trained:  # what describes the training images only
            block = {k: v for k, v in block.items() if k not in ("n_train", "normalisation", "limit_train")}
        return block


@dataclass
class RunJob:
    """Everything one run needs except the data; picklable (plugins are re-imported by name)."""

    suite: Suite
    method: Method
    evaluators: list[Evaluator]
    seed: int
    #: RunIdentity.training / .evaluation, and the ids derived from them.
    training: dict[str, Any]
    evaluation: dict[str, Any]
    run_id: str
    training_id: str
    #: Where the driver will store the result (its stem names the artifacts).
    result_path: Path
    checkpoint: Path
    #: As asked for (auto, cpu, cuda, cuda:N): resolved by ``run_job`` on the machine that runs the job.
    device: str
    cache_dir: Path
    data_dir: Path | None

    @property
    def label(self) -> str:
        return f"{self.method.name} · seed {self.seed}"


@dataclass
class JobOutput:
    result: Result
    #: Artifact file name (beside the result) → its bytes.
    artifacts: dict[str, bytes]


@dataclass
class Evaluated:
    """What the evaluators of one run measured and declared (see :func:`run_evaluators`)."""

    metrics: dict[str, float]
    metric_info: dict[str, MetricInfo]
    protocol: dict[str, dict]
    declares: dict[str, Declarations]
    #: The images the evaluators declare, by name (the ones written are in ``ctx.artifacts``).
    described: dict[str, Artifact]
    seconds: float

    def result_fields(
        self,
        suite: str,
        method: str,
        seed: int,
        run_id: str,
        training_id: str,
        ctx: EvalContext,
        described: dict[str, Artifact],
    ) -> dict[str, Any]:
        """The fields of a result file that every measured result shares (trained or evaluated as given):
        identity, metrics with their declarations, and each written image with its gallery title (from
        ``described``), so that the report needs nothing but the result file."""
        return {
            "suite": suite,
            "method": method,
            "seed": seed,
            "run_id": run_id,
            "training_id": training_id,
            "config_hash": config_hash({"run_id": run_id, "seed": seed}),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "metrics": self.metrics,
            "metric_info": self.metric_info,
            "protocol": self.protocol,
            "declares": self.declares,
            "artifacts": {
                name: dataclasses.replace(described.get(name, Artifact(name)), file=file)
                for name, file in ctx.artifacts.items()
            },
        }


def run_evaluators(
    ctx: EvalContext,
    evaluators: list[Evaluator],
    evaluation: dict[str, Any],
    label: str,
    reporter: Reporter,
) -> Evaluated:
    """Run a suite's evaluators on ``ctx.model`` and collect what goes into a result file: metrics, their
    declarations and each evaluator's protocol with its code fingerprint (from ``evaluation``, the run's
    evaluation identity). Shared by vicinal's own runs and by models evaluated as given
    (:mod:`vicinal.external.given`), so both are measured by exactly the same code, in the same precision
    on every device (:data:`vicinal.host.devices.EVALUATION_PRECISION`)."""
    t0 = time.perf_counter()
    metrics: dict[str, float] = {}
    metric_info: dict[str, MetricInfo] = {}
    protocol: dict[str, dict] = {}
    declares: dict[str, Declarations] = {}
    described: dict[str, Artifact] = {ARTIFACT: EXAMPLES}
    evaluating = reporter.task(f"{label} · evaluate", total=len(evaluators))
    for evaluator in evaluators:
        with evaluation_precision():  # IEEE float32 everywhere (EVALUATION_PRECISION)
            found = evaluator.evaluate(ctx)
        metrics.update(found)
        evaluating.advance(1)
        evaluating.line(evaluator.name, **_headline(evaluator, found))
        metric_info.update(
            {
                k: dataclasses.replace(v, evaluator=evaluator.name)
                for k, v in evaluator.metric_info().items()
                if k in metrics
            }
        )
        declares[evaluator.name] = evaluator.declarations()
        described.update(evaluator.artifacts)
        code = evaluation["evaluators"][evaluator.name]["code"]
        protocol[evaluator.name] = {
            **evaluator.protocol(),
            "code": {"module": code["module"], "fingerprint": code["fingerprint"]},
        }
    evaluating.close()
    # What paired comparisons resample (vicinal.store.outcomes): here, so that models evaluated as given get
    # the same per-example file as vicinal's own runs.
    ctx.write_examples()
    return Evaluated(metrics, metric_info, protocol, declares, described, time.perf_counter() - t0)


def configure_determinism(device: torch.device) -> bool:
    """Bit-reproducible on the CPU; on CUDA speed wins (cuDNN autotuning), so GPU runs agree only
    statistically. Set per process (a worker is its own process); returns whether runs are deterministic,
    which the result records. Without importing torch's compiler stack (2.5 s): see
    :mod:`vicinal.host.startup`."""
    deterministic = device.type == "cpu"
    set_deterministic(deterministic, warn_only=True)
    defer_dynamo()
    torch.backends.cudnn.benchmark = not deterministic
    return deterministic


def run_job(job: RunJob, rd: RunData, reporter: Reporter) -> JobOutput:
    """Train and evaluate one run. Artifacts are drawn into a private temporary folder and returned as
    bytes, so a worker on another machine needs no access to the results folder. The device is checked
    here, on the machine that runs the job (a driver without a GPU can send runs to workers with one)."""
    device = resolve_device(job.device)
    configure_determinism(device)
    with tempfile.TemporaryDirectory(prefix="vicinal-artifacts-") as staging:
        stem = Path(staging) / job.result_path.stem
        result = _run(job, rd, device, stem, reporter)
        artifacts = {a.file: (Path(staging) / a.file).read_bytes() for a in result.artifacts.values()}
    return JobOutput(result, artifacts)


def _run(job: RunJob, rd: RunData, device: torch.device, artifact_stem: Path, reporter: Reporter) -> Result:
    suite, data, method, seed = job.suite, rd.splits, job.method, job.seed
    wall = time.perf_counter()
    seed_everything(seed)
    model = build_model(suite.model, data.num_classes, rd.mean, rd.std).to(device)
    t0 = time.perf_counter()
    prepared = method.prepare(
        PrepareContext(
            train=data.train,
            num_classes=data.num_classes,
            dataset=data.name,
            data_fingerprint=rd.fingerprint,
            seed=seed,
            device=device,
            cache_dir=job.cache_dir,
            reporter=reporter,
        )
    )
    prepare_s = time.perf_counter() - t0
    summary = train(
        model,
        method,
        data.train,
        suite.recipe,
        device,
        seed,
        reporter,
        job.label,
        job.checkpoint,
    )
    ctx = EvalContext(
        model,
        data,
        device,
        suite.eval_batch_size,
        artifact_stem=artifact_stem,
        title=f"{suite.name} · {method.name} · seed {seed}",
        seed=seed,
        data_dir=job.data_dir,
        cache_dir=job.cache_dir,
        reporter=reporter,
        label=job.label,
    )
    evaluated = run_evaluators(ctx, job.evaluators, job.evaluation, job.label, reporter)
    described: dict[str, Artifact] = {"samples": SAMPLES, **evaluated.described}
    save_samples(method, data, device, ctx, reporter)
    method_code = job.training["code"]["method"]
    return Result(
        **evaluated.result_fields(suite.name, method.name, seed, job.run_id, job.training_id, ctx, described),
        method_info={
            **method.describe(),
            "prepared": prepared,
            "code": {k: v for k, v in method_code.items() if k != "files"},
        },
        # The evaluator settings as run (with --set overrides): the protocol that produced these numbers.
        suite_spec={
            **suite.spec(),
            "evaluators": {n: e["settings"] for n, e in job.evaluation["evaluators"].items()},
        },
        data=rd.result_data(),
        training={
            "epochs": suite.recipe.epochs,
            "precision": training_precision(device),
            "images_per_second": round(summary.images_per_second, 1),
            # Images through the classifier per training image: 2 when a method adds the clean batch to
            # its mixed one, so methods can be compared at equal compute.
            "images_seen": summary.images,
            "images_forwarded": summary.forwarded,
            "resumed_from_epoch": summary.resumed_from_epoch,
            "reused_trained_model": summary.resumed_from_epoch == suite.recipe.epochs,
            "final_loss": summary.history[-1]["loss"] if summary.history else None,
            "history": summary.history,
        },
        environment={**environment(device), "deterministic": device.type == "cpu"},
        timing={
            "prepare_s": round(prepare_s, 2),
            "train_s": round(summary.seconds, 2),
            "eval_s": round(evaluated.seconds, 2),
            "wall_s": round(time.perf_counter() - wall, 2),
        },
    )


def _headline(evaluator: Evaluator, found: dict[str, float]) -> dict[str, str]:
    """An evaluator's headline figures as text, for its line in a log."""
    out = {}
    for name, info in evaluator.metric_info().items():
        if info.headline and name in found:
            value = found[name] * (100 if info.percent else 1)
            out[info.label] = f"{value:.2f}{'%' if info.percent else ''}"
    return out


PREVIEW_SEED = 0  # the same images, pairs and draws for every method and seed, so grids compare
SAMPLES = Artifact(
    "Training samples",
    "What each method trains on, from the same eight training images and pairs (fixed seed): the clean "
    "pair and the mixed sample the method makes, with any intermediate images its preview adds (such as a "
    "VAE's reconstructions and decoded mixes).",
    layout="stack",
)


def save_samples(
    method: Method, data: DataSplits, device: torch.device, ctx: EvalContext, reporter: Reporter
) -> None:
    """Draw what the method trains on (``Method.preview``) as ``<result>.samples.png``: eight training
    images of different classes, each paired with the next. Runs after evaluation, with its own
    generators, so it cannot change a metric; a failing preview is a warning, not a lost run."""
    g = torch.Generator().manual_seed(PREVIEW_SEED)
    order = torch.randperm(len(data.train), generator=g)
    first: dict[int, int] = {}
    for i in order.tolist():
        first.setdefault(int(data.train.labels[i]), i)
        if len(first) == 8:
            break
    index = torch.tensor(list(first.values()))
    x, y = to_unit(data.train.images[index], device), data.train.labels[index].to(device)
    perm = torch.roll(torch.arange(len(index)), -1).to(device)
    try:
        preview = method.preview(x, y, perm, RunRandom(PREVIEW_SEED))
        if preview is None:
            return
        path = ctx.artifact_path("samples")
        if path is None:
            return
        from vicinal.core.plots import sample_grid

        rows = {
            k: v.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
            for k, v in preview.rows.items()
        }
        sample_grid(rows, f"{ctx.title}: training samples", preview.note, path)
    except Exception as exc:  # a plugin's preview must not cost a finished run
        ctx.artifacts.pop("samples", None)
        reporter.warn(f"{method.name}: no training-sample preview ({type(exc).__name__}: {exc})")
