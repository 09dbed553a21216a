"""``vicinal selfcheck``: whether this machine runs vicinal as it should, checked in minutes before a
paper-scale suite is trusted to it (a new machine, or the first GPU a developer is lent).

Five checks, each printed with its figures; the command passes only when none fails (a check that does
not apply here is skipped and says why):

- **throughput**: every built-in method trains the same classifier from the same images for a few
  epochs (the first not timed: cuDNN autotuning, allocator warm-up); images/s per method and its ratio to
  ERM. It fails only when a method cannot train; the figures are for BENCHMARKS.md.
- **host syncs** (CUDA): how often training makes the host wait for the GPU, counted by torch's sync
  debug mode in two runs of one epoch, the second twice as long: equal counts mean no per-step sync.
- **resume**: a run interrupted mid-epoch (as Ctrl-C interrupts it; a killed worker leaves the same
  checkpoint) and resumed ends with the weights of an uninterrupted run: bitwise on the CPU; on CUDA,
  which autotunes and is not bit-reproducible, within ``max(4 d, 1e-5)`` relative L2 distance, ``d`` that
  between two uninterrupted runs (a resume that lost its random state or optimiser moves much further).
- **evaluation**: the resumed check's model evaluated on the CPU in float32 and on the device, clean
  and corrupted images (corrupted on each device, brightness and contrast: no random draws): the
  differences of the clean logits and of the headline metrics against :data:`TOLERANCES` (zero on the
  CPU, where both evaluations must agree exactly).
- **ray** (Ray and a GPU): two runs of a tiny suite as Ray tasks of half a GPU each; both must land,
  trained on CUDA.

Sizes: ``quick`` (a small CNN, a few hundred images: well under a minute on a CPU) or the full check
(PreActResNet-18, the CIFAR-10 training images or 6,400 synthetic ones: minutes on a GPU, long on a CPU).
The CIFAR-10 images are used where the data folder holds them; otherwise class-coloured synthetic images.

Longer than most modules because it holds five checks and the data, sizes and tolerances they share: the
parts of one command, each short.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib.util
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vicinal.core.errors import VicinalError
from vicinal.core.fingerprints import fingerprint
from vicinal.core.hparams import build_config
from vicinal.core.reporting import SilentReporter
from vicinal.data.datasets import DataSplits, ImageSet, count_train_batches, load_dataset
from vicinal.evaluation.evaluator import EVALUATORS, EvalContext, Evaluator
from vicinal.execution.jobs import configure_determinism, run_evaluators
from vicinal.execution.options import ExecutorOptions, Overrides, RunOptions
from vicinal.execution.outcomes import RunsFailed
from vicinal.execution.plan import execute, plan_run
from vicinal.execution.suite import load_suite, validate_components
from vicinal.host.devices import resolve_device, training_precision
from vicinal.store.results import read_result
from vicinal.training.loop import read_checkpoint, train
from vicinal.training.method import METHODS, Method, PrepareContext
from vicinal.training.models import build_model
from vicinal.training.recipe import Recipe
from vicinal.training.rng import seed_everything

OK, FAILED, SKIPPED = "ok", "failed", "skipped"

#: The throughput goal for ERM (BENCHMARKS.md, P3), shown beside the measured figure on CUDA.
GOAL_IMAGES_PER_S = 20_000

#: Largest differences allowed between the CPU's and the device's evaluation of one model (all float32).
#: ``logits``: the largest difference of a clean test logit relative to the largest logit. Two devices sum
#: in different orders, which moves float32 logits by ~1e-6 of their scale; TF32 (10-bit mantissa) or
#: bfloat16 (8-bit) moves them by ~1e-3 to 1e-2, and even rounding float32 logits to bfloat16 at the end
#: moves them by up to 2e-3. Metrics: an image on a decision boundary may flip (0.5 points: five of 1,000
#: test images). Corrupted images are made on each device and may differ by a uint8 step: a wider bound.
TOLERANCES = {
    "logits": 2e-4,
    "acc": 0.005,
    "nll": 0.005,
    "brier": 0.005,
    "ece": 0.005,
    "ece_ts": 0.005,
    "temperature": 0.01,
    "c_acc": 0.01,
    "c_ece": 0.01,
}

#: The evaluators of the evaluation check (no files, no random corruptions; ``n_samples`` per size).
EVALUATION = {
    "clean": {},
    "calibration": {"diagram": False},
    "corruption": {"corruptions": ["brightness", "contrast"], "severities": [1, 5], "source": "generate"},
}


@dataclass(frozen=True)
class Sizes:
    """How much each check trains and evaluates."""

    model: str
    batch_size: int
    #: Training images at most (the CIFAR-10 subset may hold fewer; a tenth is held out), test images.
    n_train: int
    n_test: int
    #: Throughput epochs; the first warms up and is not timed.
    epochs: int
    #: The resume check's images and epochs (interrupted in the second).
    resume_train: int
    resume_epochs: int
    vae_epochs: int
    #: Images per corrupted cell in the evaluation check.
    corrupted: int


QUICK = Sizes("small-cnn-16", 32, 256, 200, 2, 96, 3, vae_epochs=1, corrupted=100)
FULL = Sizes("preactresnet18", 128, 6400, 1000, 5, 2048, 3, vae_epochs=2, corrupted=500)


@dataclass
class Check:
    """One check's verdict (``ok``, ``failed`` or ``skipped``), a one-line summary, and its figures."""

    name: str
    status: str
    summary: str
    lines: list[str] = field(default_factory=list)
    #: How long it took (set by :func:`run_selfcheck`).
    seconds: float = 0.0


class Interrupted(Exception):
    """Raised inside a training step to interrupt a run, as Ctrl-C does."""


# ---------------------------------------------------------------- data and methods


def synthetic_data(n_train: int, n_test: int, seed: int = 0) -> DataSplits:
    """Ten classes of 32-px images: each class a smooth random colour pattern, each image its class's
    pattern half-covered by uniform noise, so a classifier can learn them and its logits mean something."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    patterns = F.interpolate(torch.rand(10, 3, 4, 4, generator=g), size=(32, 32), mode="bilinear")

    def draw(n: int) -> ImageSet:
        labels = torch.randint(0, 10, (n,), generator=g)
        pixels = 0.5 * patterns[labels] + 0.5 * torch.rand(n, 3, 32, 32, generator=g)
        return ImageSet((pixels * 255).round().to(torch.uint8), labels)

    return DataSplits(
        "synthetic",
        draw(n_train),
        draw(n_test),
        num_classes=10,
        class_names=[f"pattern {i}" for i in range(10)],
        source="vicinal selfcheck: class patterns plus uniform noise, seed 0",
    )


def selfcheck_data(data_dir: str | Path | None, sizes: Sizes) -> DataSplits:
    """The CIFAR-10 images where the data folder holds them, else synthetic ones; cut to ``sizes`` and
    with a tenth of the training images held out (the evaluation check fits a temperature on them)."""
    try:
        data = load_dataset("cifar10", data_dir)
    except VicinalError:
        data = synthetic_data(sizes.n_train, sizes.n_test)
    data = data.limit_train(sizes.n_train)
    data = dataclasses.replace(data, test=data.test.subset(torch.arange(min(sizes.n_test, len(data.test)))))
    return data.hold_out(0.1)


def builtin_methods() -> list[str]:
    """The methods vicinal ships (plugins left out: they are their authors' to measure)."""
    return [n for n in METHODS.names() if METHODS.get(n).__module__.startswith("vicinal.methods.")]


def configured(name: str, sizes: Sizes) -> Method:
    """Method ``name`` with its defaults, and a small, quickly trained VAE where it has one."""
    cls = METHODS.get(name)
    names = {f.name for f in dataclasses.fields(cls.Config)}
    small = {"vae_epochs": sizes.vae_epochs, "latent_dim": 32}
    return cls(build_config(cls.Config, {k: v for k, v in small.items() if k in names}, name))


def recipe(sizes: Sizes, epochs: int) -> Recipe:
    return Recipe(epochs=epochs, batch_size=sizes.batch_size, lr=0.05, schedule="cosine", weight_decay=5e-4)


def fresh_model(data: DataSplits, sizes: Sizes, device: torch.device, seed: int) -> nn.Module:
    seed_everything(seed)
    mean, std = data.channel_stats()
    return build_model(sizes.model, data.num_classes, mean, std).to(device)


# ---------------------------------------------------------------- the checks


def is_cuda(device: torch.device) -> bool:
    """Whether the CUDA-only parts of the checks apply (the tests force them on the CPU)."""
    return device.type == "cuda"


@dataclass
class Trained:
    """A method prepared once (its VAE trained) for the throughput and sync checks."""

    method: Method
    images_per_s: float
    forwarded: float


def check_throughput(
    data: DataSplits, device: torch.device, sizes: Sizes, cache: Path
) -> tuple[Check, dict[str, Trained]]:
    """Each built-in method trains ``sizes.epochs`` epochs; images/s over all but the first."""
    trained: dict[str, Trained] = {}
    lines = [f"{'method':<16} {'images/s':>10} {'× ERM':>7} {'forwarded/image':>16}"]
    failures = []
    for name in builtin_methods():
        method = configured(name, sizes)
        try:
            method.prepare(
                PrepareContext(
                    train=data.train,
                    num_classes=data.num_classes,
                    dataset=data.name,
                    data_fingerprint=data.fingerprint(),
                    seed=0,
                    device=device,
                    cache_dir=cache,
                    reporter=SilentReporter(),
                )
            )
            model = fresh_model(data, sizes, device, 0)
            summary = train(
                model, method, data.train, recipe(sizes, sizes.epochs), device, 0, SilentReporter(), name
            )
        except Exception as exc:  # a method that cannot train here is this check's finding
            failures.append(name)
            lines.append(f"{name:<16} failed: {type(exc).__name__}: {exc}")
            continue
        timed = summary.history[1:] or summary.history
        seconds = sum(h["seconds"] for h in timed)
        images = summary.images * len(timed) / len(summary.history)
        trained[name] = Trained(method, images / max(seconds, 1e-9), summary.forwarded / summary.images)
    erm = trained.get("erm")
    for name, t in trained.items():
        ratio = f"{t.images_per_s / erm.images_per_s:.2f}" if erm else "—"
        lines.append(f"{name:<16} {t.images_per_s:>10,.0f} {ratio:>7} {t.forwarded:>16.1f}")
    steps = count_train_batches(len(data.train), sizes.batch_size)
    lines.append(
        f"{sizes.model}, batch {sizes.batch_size}, {training_precision(device)}; {sizes.epochs} epochs of "
        f"{steps} steps, the first not timed"
    )
    if erm and is_cuda(device) and sizes.model == "preactresnet18":
        verdict = "meets" if erm.images_per_s >= GOAL_IMAGES_PER_S else "is below"
        lines.append(f"ERM {verdict} the goal of {GOAL_IMAGES_PER_S:,} images/s (BENCHMARKS.md, P3: an H100)")
    if failures:
        return Check("throughput", FAILED, f"{', '.join(failures)} could not train", lines), trained
    summary_line = f"ERM {erm.images_per_s:,.0f} images/s" if erm else "trained"
    return Check("throughput", OK, summary_line, lines), trained


def count_syncs(run: Callable[[], Any]) -> int:
    """How often ``run`` made the host wait for the GPU (torch's sync debug mode warns at each)."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def check_host_syncs(
    data: DataSplits, device: torch.device, sizes: Sizes, trained: dict[str, Trained]
) -> Check:
    """Syncs in one epoch of n and of 2n full batches (n = 4 where the images allow; a warm-up first):
    the same count, or a step syncs."""
    if not is_cuda(device):
        return Check(
            "host syncs",
            SKIPPED,
            "only a GPU makes the host wait (the tests count copies on a stand-in device)",
        )
    few_steps = min(4, len(data.train) // sizes.batch_size // 2)
    if few_steps < 1:
        return Check("host syncs", SKIPPED, f"fewer than two batches of {sizes.batch_size} images")
    lines = [f"{'method':<16} {f'{few_steps} steps':>8} {f'{2 * few_steps} steps':>8}"]
    per_step = []

    def one_epoch(method: Method, steps: int) -> None:
        subset = data.train.subset(torch.arange(steps * sizes.batch_size))
        model = fresh_model(data, sizes, device, 0)
        # Read back at the end of the epoch only: what remains is what every step does.
        plan = recipe(sizes, 1)
        train(model, method, subset, plan, device, 0, SilentReporter(), "syncs", progress_every_s=math.inf)

    for name, t in trained.items():
        one_epoch(t.method, few_steps)  # warm: cuDNN has chosen its kernels for these shapes
        few = count_syncs(lambda m=t.method: one_epoch(m, few_steps))
        more = count_syncs(lambda m=t.method: one_epoch(m, 2 * few_steps))
        lines.append(f"{name:<16} {few:>8} {more:>8}")
        if more != few:
            per_step.append(name)
    if per_step:
        return Check("host syncs", FAILED, f"{', '.join(per_step)} wait for the GPU in every step", lines)
    return Check("host syncs", OK, "no training step waits for the GPU", lines)


def weight_distance(a: nn.Module, b: nn.Module) -> float:
    """Relative L2 distance of two models' floating-point state; inf if anything else differs."""
    num = den = 0.0
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        if ka != kb or va.shape != vb.shape:
            return math.inf
        if not va.is_floating_point():
            if not torch.equal(va.cpu(), vb.cpu()):
                return math.inf
            continue
        num += float((va.double() - vb.double()).pow(2).sum())
        den += float(va.double().pow(2).sum())
    return math.sqrt(num / max(den, 1e-300))


def check_resume(
    data: DataSplits, device: torch.device, sizes: Sizes, folder: Path
) -> tuple[Check, nn.Module]:
    """Uninterrupted against interrupted-and-resumed mixup (its λ and pairs test the random state)."""
    subset = data.train.subset(torch.arange(min(sizes.resume_train, len(data.train))))
    steps = count_train_batches(len(subset), sizes.batch_size)
    plan = recipe(sizes, sizes.resume_epochs)

    def run(checkpoint: Path | None = None, stop_at: int | None = None) -> nn.Module:
        model = fresh_model(data, sizes, device, 1)
        method = METHODS.get("mixup")()
        if stop_at is not None:
            real, calls = method.training_step, [0]

            def interrupting(*args: Any) -> Any:
                calls[0] += 1
                if calls[0] == stop_at:
                    raise Interrupted
                return real(*args)

            method.training_step = interrupting  # type: ignore[method-assign]
        train(model, method, subset, plan, device, 1, SilentReporter(), "resume", checkpoint)
        return model

    checkpoint = folder / "resume.pt"
    reference = run()
    with contextlib.suppress(Interrupted):
        run(checkpoint, stop_at=steps + steps // 2 + 1)  # in the middle of the second epoch
    state = read_checkpoint(checkpoint)
    if state is None or state.get("epoch") != 1:
        got = "none" if state is None else f"epoch {state.get('epoch')}"
        return Check("resume", FAILED, f"no checkpoint of epoch 1 after the interruption ({got})"), reference
    resumed = run(checkpoint)
    distance = weight_distance(reference, resumed)
    lines = [f"mixup, {plan.epochs} epochs of {steps} steps, interrupted at step {steps // 2 + 1} of epoch 2"]
    if is_cuda(device):
        floor = weight_distance(reference, run())
        tolerance = max(4 * floor, 1e-5)
        lines.append(f"two uninterrupted runs differ by {floor:.2e} (CUDA is not bit-reproducible)")
        lines.append(f"resumed against uninterrupted: {distance:.2e} (tolerance {tolerance:.2e})")
        ok = distance <= tolerance
    else:
        lines.append(f"resumed against uninterrupted: {distance:.2e} (must be bitwise equal on the CPU)")
        ok = distance == 0.0
    summary = "the resumed run ends with the uninterrupted run's weights"
    if not ok:
        summary = f"the resumed run's weights are {distance:.2e} away from the uninterrupted run's"
    return Check("resume", OK if ok else FAILED, summary, lines), reference


def evaluation_evaluators(sizes: Sizes) -> list[Evaluator]:
    out = []
    for name, settings in EVALUATION.items():
        cls = EVALUATORS.get(name)
        if name == "corruption":
            settings = {**settings, "n_samples": sizes.corrupted}
        out.append(cls(build_config(cls.Config, settings, f"evaluators.{name}", what="setting")))
    return out


@dataclass
class Evaluation:
    """What one evaluation of the check's model measured."""

    device: str
    metrics: dict[str, float]
    logits: torch.Tensor


def evaluate_on(model: nn.Module, data: DataSplits, device: torch.device, sizes: Sizes) -> Evaluation:
    """``model`` (a copy) evaluated on ``device`` by the runner's own evaluation (its precision rule)."""
    evaluators = evaluation_evaluators(sizes)
    identity = {"evaluators": {e.name: {"code": fingerprint(type(e))} for e in evaluators}}
    ctx = EvalContext(copy.deepcopy(model).to(device), data, device, batch_size=256, seed=0)
    evaluated = run_evaluators(ctx, evaluators, identity, f"evaluate on {device}", SilentReporter())
    return Evaluation(str(device), evaluated.metrics, ctx.test_logits)


def compare_evaluations(cpu: Evaluation, dev: Evaluation, exact: bool) -> Check:
    """The device's evaluation against the CPU's: every difference within :data:`TOLERANCES` (within 0
    when ``exact``: both ran on the CPU)."""
    scale = float(cpu.logits.abs().max()) or 1.0
    rows = [("logits", math.nan, math.nan, float((cpu.logits - dev.logits).abs().max()) / scale)]
    rows += [
        (k, cpu.metrics[k], dev.metrics[k], abs(cpu.metrics[k] - dev.metrics[k]))
        for k in TOLERANCES
        if k in cpu.metrics and k in dev.metrics
    ]
    lines = [f"{'':<12} {'CPU':>10} {dev.device:>10} {'|Δ|':>10} {'tolerance':>10}"]
    off = []
    for name, a, b, delta in rows:
        tolerance = 0.0 if exact else TOLERANCES[name]
        shown = ("", "(max, rel.)") if name == "logits" else (f"{a:.4f}", f"{b:.4f}")
        lines.append(f"{name:<12} {shown[0]:>10} {shown[1]:>10} {delta:>10.2e} {tolerance:>10.0e}")
        if not delta <= tolerance:
            off.append(name)
    if exact:
        lines.append("the device is the CPU: the two evaluations must agree exactly")
    if off:
        return Check("evaluation", FAILED, f"{', '.join(off)} differ beyond tolerance", lines)
    if exact:
        return Check("evaluation", OK, "two evaluations on the CPU agree exactly", lines)
    return Check("evaluation", OK, f"the CPU and {dev.device} agree within tolerance", lines)


def check_evaluation(model: nn.Module, data: DataSplits, device: torch.device, sizes: Sizes) -> Check:
    """The same weights evaluated on the CPU and on ``device``."""
    cpu = evaluate_on(model, data, torch.device("cpu"), sizes)
    return compare_evaluations(cpu, evaluate_on(model, data, device, sizes), exact=not is_cuda(device))


def check_ray(device: torch.device, folder: Path) -> Check:
    """Two runs of the digits suite (1 epoch, 64 images) as Ray tasks of half a GPU each."""
    if importlib.util.find_spec("ray") is None:
        return Check("ray", SKIPPED, "Ray is not installed (pip install 'vicinal[ray]')")
    if not is_cuda(device):
        return Check("ray", SKIPPED, "needs a GPU: fractional-GPU tasks are what it checks")
    overrides = Overrides(methods=["erm"], seeds=[0, 1], epochs=1, limit_train=64, evaluators=["clean"])
    suite = load_suite("digits")
    validate_components(overrides.apply(suite))
    options = RunOptions(
        device="cuda",
        results_dir=folder / "results",
        cache_dir=folder / "cache",
        executor=ExecutorOptions("ray", gpus_per_run=0.5),
    )
    try:
        outcomes = execute(plan_run(suite, overrides, options))
    except RunsFailed as exc:
        lines = [f"{f.method} · seed {f.seed}: {f.message}" for f in exc.failures]
        return Check("ray", FAILED, "a half-GPU run failed", lines)
    devices = [str(read_result(o.path).environment.get("device", {}).get("type")) for o in outcomes]
    lines = [f"seed {o.seed}: {o.status} on {d}" for o, d in zip(outcomes, devices, strict=True)]
    if len(outcomes) != 2 or not all(d.startswith("cuda") for d in devices):
        return Check("ray", FAILED, "the two half-GPU runs did not both train on CUDA", lines)
    return Check("ray", OK, "two half-GPU Ray tasks trained on CUDA", lines)


# ---------------------------------------------------------------- all of it


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def run_selfcheck(
    device: str = "auto",
    quick: bool = False,
    data_dir: str | Path | None = None,
    say: Callable[[str], None] = print,
    on_check: Callable[[Check], None] | None = None,
) -> list[Check]:
    """Every check, in order; ``say`` gets the header lines, ``on_check`` each check as it finishes."""
    where = resolve_device(device)
    if where.type not in ("cpu", "cuda"):
        raise VicinalError(f"--device {device}: the selfcheck runs on cpu or cuda")
    sizes = QUICK if quick else FULL
    started = time.perf_counter()
    configure_determinism(where)  # as a run would: bitwise on the CPU, autotuned on CUDA
    data = selfcheck_data(data_dir, sizes)
    say(
        f"device {describe_device(where)} · torch {torch.__version__} · "
        f"{'quick' if quick else 'full'} check · {data.name} images: {len(data.train)} train, "
        f"{len(data.val) if data.val is not None else 0} validation, {len(data.test)} test"
    )
    if not quick and not is_cuda(where):
        say(
            "the full check trains PreActResNet-18 for 5 epochs per method on the CPU, which takes long; "
            "--quick checks the same things with a small CNN"
        )
    checks: list[Check] = []

    clock = [time.perf_counter()]

    def done(check: Check) -> None:
        now = time.perf_counter()
        check.seconds, clock[0] = now - clock[0], now
        checks.append(check)
        if on_check is not None:
            on_check(check)

    def guarded(name: str, check: Callable[[], Any]) -> Any:
        """A check that raised is that check failed (with what it raised); the others still run."""
        try:
            return check()
        except Exception as exc:
            return Check(name, FAILED, f"{type(exc).__name__}: {exc}")

    with tempfile.TemporaryDirectory(prefix="vicinal-selfcheck-") as tmp:
        folder = Path(tmp)
        found = guarded("throughput", lambda: check_throughput(data, where, sizes, folder))
        throughput, trained = found if isinstance(found, tuple) else (found, {})
        done(throughput)
        done(guarded("host syncs", lambda: check_host_syncs(data, where, sizes, trained)))
        found = guarded("resume", lambda: check_resume(data, where, sizes, folder))
        resume, model = found if isinstance(found, tuple) else (found, None)
        done(resume)
        if model is None:
            done(Check("evaluation", SKIPPED, "it evaluates the resume check's model, which did not train"))
        else:
            done(guarded("evaluation", lambda: check_evaluation(model, data, where, sizes)))
        done(guarded("ray", lambda: check_ray(where, folder / "ray")))
    say(f"{time.perf_counter() - started:.0f} s in all")
    return checks
