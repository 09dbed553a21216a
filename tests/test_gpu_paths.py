"""The CUDA path, tested without a GPU: its branches forced on the CPU, its device placement checked on a
stand-in device (``meta``, watched by :class:`fakegpu.FakeGPU`), and the options Ray tasks are submitted
with read from a stand-in Ray. No test here needs a GPU; ``vicinal selfcheck`` checks the real thing where
there is one.

Each defect of issue 23 has its test: resume on a device (the RNG state must stay on the CPU), no per-step
host sync, evaluation in IEEE float32 (no autocast, TF32 off), generated -C sets keyed by their device and
left on it, a fresh Ray worker per GPU run, the device checked where a run executes, one GPU per run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import pickle
import re
import types
from pathlib import Path

import pytest
import torch
from fakegpu import META, FakeGPU
from torch import nn

import vicinal.training.loop as loop
from vicinal.core.errors import VicinalError
from vicinal.core.hparams import build_config
from vicinal.core.reporting import SilentReporter
from vicinal.data.datasets import load_dataset
from vicinal.training.method import METHODS, get_method
from vicinal.training.models import build_model
from vicinal.training.recipe import Recipe
from vicinal.training.rng import RunRandom, seed_everything

CPU = torch.device("cpu")
BATCH = 16


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def no_progress_reads(monkeypatch):
    """The running loss is read back at the end of each epoch only (not every half second); autocast, which
    has no meaning on the stand-in device (torch refuses its type), is left out there."""
    monkeypatch.setattr(loop, "PROGRESS_EVERY_S", math.inf)
    real = torch.autocast

    def autocast(device_type, *args, **kwargs):
        return contextlib.nullcontext() if device_type == "meta" else real(device_type, *args, **kwargs)

    monkeypatch.setattr(torch, "autocast", autocast)
    # Nor has it generators of its own (torch refuses one); its operations take a CPU generator's draws
    # without reading them, as a CUDA generator's would be drawn on the GPU without a host wait.
    real_generator_on = RunRandom.generator_on

    def generator_on(self, device):
        return real_generator_on(self, "cpu" if torch.device(device).type == "meta" else device)

    monkeypatch.setattr(RunRandom, "generator_on", generator_on)


def _model(device: torch.device | str = CPU) -> nn.Module:
    seed_everything(0)
    return build_model("small-cnn-16", 10, [0.1] * 3, [0.3] * 3).to(device)


def _method(name: str):
    cls = get_method(name)
    small = {"vae_epochs": 1, "latent_dim": 8} if name.startswith("varmixup") else {}
    return cls(build_config(cls.Config, small, name))


def _train(model, method, images, device, epochs=1, checkpoint=None):
    recipe = Recipe(epochs=epochs, batch_size=BATCH, lr=0.05, schedule="cosine")
    return loop.train(model, method, images, recipe, device, 0, SilentReporter(), "t", checkpoint)


def _prepare(method, images, device, cache: Path) -> None:
    from vicinal.training.method import PrepareContext

    method.prepare(PrepareContext(images, 10, "digits", "test", 0, device, cache, SilentReporter()))


# ---------------------------------------------------------------- resume


# The stand-in device holds no data: torch says that copying the checkpoint's weights into it does nothing.
@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter:UserWarning")
def test_a_run_resumes_on_a_device_other_than_the_cpu(digits, tmp_path, no_progress_reads):
    """The checkpoint's RNG state is a CPU byte tensor; loaded onto the run's device (the old
    ``map_location=device``), ``RunRandom.load_state`` refused it, so every GPU resume failed: Ctrl-C
    resume, reuse of a final checkpoint, Ray's retry after a lost worker."""
    images = digits.train.subset(torch.arange(4 * BATCH))
    checkpoint = tmp_path / "run.pt"
    _train(_model(), _method("mixup"), images, CPU, checkpoint=checkpoint)  # epoch 1, on the CPU
    with FakeGPU():
        summary = _train(_model(META), _method("mixup"), images, META, epochs=2, checkpoint=checkpoint)
    assert summary.resumed_from_epoch == 1 and len(summary.history) == 2


def test_a_checkpoint_is_read_onto_the_cpu_whatever_it_holds(tmp_path):
    state = {"rng": torch.Generator().get_state(), "model": {"w": torch.ones(2)}, "epoch": 3}
    torch.save(state, tmp_path / "c.pt")
    read = loop.read_checkpoint(tmp_path / "c.pt")
    assert read["epoch"] == 3 and read["rng"].device == CPU and read["model"]["w"].device == CPU


# ---------------------------------------------------------------- host syncs


def _copies(run) -> tuple[int, int, int]:
    with FakeGPU() as watch:
        run()
    return watch.sync_copies, watch.async_copies, watch.reads


@pytest.mark.parametrize("name", METHODS.names())
def test_no_training_step_makes_the_host_wait(name, digits, tmp_path, no_progress_reads):
    """Synchronous copies and reads do not grow with the number of steps (the README's "no per-step host
    sync"): before, every ERM step made three synchronous host → GPU copies (batch indices, crop offsets,
    flip coins) and every mixing step four or five."""
    method = _method(name)
    _prepare(method, digits.train.subset(torch.arange(2 * BATCH)), CPU, tmp_path)
    if name.startswith("varmixup"):
        method.vae = method.vae.to(META)

    def epoch(steps: int):
        images, model = digits.train.subset(torch.arange(steps * BATCH)), _model(META)
        return _copies(lambda: _train(model, method, images, META))

    few, more = epoch(4), epoch(8)
    assert few[0] == more[0] == 2  # the training images and labels, once per run
    assert few[2] == more[2]  # the running loss, at the end of the epoch
    assert more[1] > few[1]  # the draws each step needs, sent asynchronously


def test_vae_pre_training_never_waits_for_the_device(digits):
    """Before, each VAE step copied its noise synchronously and its images from pageable host memory."""
    from vicinal.methods.vae import VAESpec, train_vae

    def run(steps: int):
        images = digits.train.subset(torch.arange(steps * BATCH))
        spec = VAESpec("digits", "test", (3, 32, 32), 8, 1.0, 1, 1e-3, BATCH, 0)
        return _copies(lambda: train_vae(spec, images, META, SilentReporter()))

    few, more = run(2), run(4)
    assert few[0] == more[0] and few[2] == more[2] and more[1] > few[1]


def test_a_copy_to_a_gpu_goes_through_pinned_memory(monkeypatch):
    """The CUDA branch of ``to_device``, forced for the stand-in device."""
    import vicinal.host.devices as devices

    pinned = []
    monkeypatch.setattr(devices, "PINNED_TYPES", frozenset({"meta"}))
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: pinned.append(t) or t)
    draw = torch.arange(5)
    with FakeGPU() as watch:
        sent = devices.to_device(draw, META)
    assert pinned == [draw] and sent.device == META and (watch.sync_copies, watch.async_copies) == (0, 1)
    assert devices.to_device(draw, CPU) is draw  # already there: no copy at all


# ---------------------------------------------------------------- evaluation precision


class LooksLikeCuda(str):
    """A device that passes a device-type check for CUDA and is the CPU to torch (forces CUDA branches)."""

    type = "cuda"
    index = None


class Recording(nn.Module):
    """A linear classifier that records the precision it is called in."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3 * 32 * 32, 10)
        self.calls: list[tuple[torch.dtype, str, str]] = []

    def forward(self, x):
        self.calls.append(
            (x.dtype, torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
        )
        return self.linear(x.flatten(1))


def test_evaluation_runs_in_float32_with_tf32_off_on_every_device(digits, monkeypatch):
    """Before, CUDA computed clean, calibration and corrupted logits under bfloat16 autocast (the CPU in
    float32, the attacks in float32 too), and no result said so."""
    from vicinal.evaluation.evaluator import EvalContext, Evaluator
    from vicinal.execution.jobs import run_evaluators

    def fp32_settings():
        return torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision

    autocasts = []
    monkeypatch.setattr(torch, "autocast", lambda *a, **k: autocasts.append(a) or contextlib.nullcontext())

    class Probe(Evaluator):
        name = "probe"

        def evaluate(self, ctx):
            return {"acc": float((ctx.test_logits.argmax(1) == ctx.test_labels).double().mean())}

    model = Recording()
    data = dataclasses.replace(digits, test=digits.test.subset(torch.arange(40)))
    ctx = EvalContext(model, data, LooksLikeCuda("cpu"), batch_size=16)
    before = fp32_settings()
    code = {"module": "test", "fingerprint": "-"}
    run_evaluators(ctx, [Probe()], {"evaluators": {"probe": {"code": code}}}, "t", SilentReporter())
    assert autocasts == []
    assert model.calls and set(model.calls) == {(torch.float32, "ieee", "ieee")}
    assert fp32_settings() == before  # restored for training


def test_a_result_records_its_precision(monkeypatch):
    from vicinal.host.devices import EVALUATION_PRECISION, precision_record, training_precision

    assert precision_record(CPU) == {"evaluation": EVALUATION_PRECISION}
    assert training_precision(CPU) == "float32"
    cuda = torch.device("cuda")
    assert training_precision(cuda) == "bfloat16 autocast"
    settings = precision_record(cuda)["fp32_outside_evaluation"]
    assert settings == {
        "cuda.matmul": torch.backends.cuda.matmul.fp32_precision,
        "cudnn.conv": torch.backends.cudnn.conv.fp32_precision,
    }


# ---------------------------------------------------------------- corrupted sets


def test_generated_sets_are_keyed_by_the_device_that_made_them(digits, tmp_path, monkeypatch):
    """A CUDA generator draws other numbers than the CPU's from one seed: before, sets made on either
    shared one cache folder (and their manifests did not say where they were made)."""
    import vicinal.evaluators.corruption as corruption
    from vicinal.evaluation.evaluator import EvalContext

    class Stop(Exception):
        pass

    folders = []

    def write_set(test, folder, *args, **kwargs):
        folders.append(folder)
        raise Stop

    monkeypatch.setattr(corruption, "write_set", write_set)
    evaluator = corruption.CorruptionEvaluator(
        build_config(corruption.CorruptionEvaluator.Config, {"corruptions": ["brightness"]}, "corruption")
    )
    gpu = {"name": ""}
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: gpu["name"])
    cuda = torch.device("cuda")
    for device, name in ((CPU, ""), (cuda, "NVIDIA H100"), (cuda, "NVIDIA A100")):
        gpu["name"] = name
        with pytest.raises(Stop):
            evaluator._cached_set(EvalContext(nn.Identity(), digits, device, cache_dir=tmp_path), None)
    assert len(set(folders)) == 3


def test_a_written_set_records_the_device_that_made_it(digits, tmp_path):
    from vicinal.data.corrupted import write_set

    test = digits.test.subset(torch.arange(8))
    manifest = write_set(test, tmp_path, ["brightness"], [1], seed=0, table=None, device=CPU, source={})
    assert manifest["settings"]["device"] == "cpu"


def test_images_corrupted_on_the_fly_stay_on_the_device(digits, monkeypatch):
    """Before, each batch went device → host (``.cpu()``) → device again before the model saw it."""
    import vicinal.corruptions
    import vicinal.data.corrupted as corrupted

    monkeypatch.setattr(vicinal.corruptions, "corrupt", lambda images, *args, **kwargs: images)
    monkeypatch.setattr(corrupted, "cell_generator", lambda *args: None)
    test = digits.test.subset(torch.arange(40))
    made = corrupted.GeneratedSet(test, ["brightness"], [1], 0, None, META)
    batches = list(made.batches("brightness", 1, 16))
    assert [len(b) for b in batches] == [16, 16, 8] and {b.device for b in batches} == {META}
    assert made.info["device"] == "meta"


# ---------------------------------------------------------------- Ray and the device


def _ray_plan(tmp_path, device="cuda", **executor):
    from vicinal.api import prepare
    from vicinal.execution.options import ExecutorOptions, Overrides, RunOptions

    overrides = Overrides(methods=["erm"], seeds=[0, 1], epochs=1, limit_train=32, evaluators=["clean"])
    options = RunOptions(
        device=device,
        results_dir=tmp_path / "results",
        cache_dir=tmp_path / "cache",
        executor=ExecutorOptions("ray", **executor),
    )
    return prepare("digits", overrides, options)


needs_ray = pytest.mark.skipif(
    __import__("importlib").util.find_spec("ray") is None, reason="ray is not installed"
)


@needs_ray
def test_a_driver_without_a_gpu_sends_cuda_runs_to_a_cluster(tmp_path):
    """Before, ``--executor ray --address … --device cuda`` was refused on a head or laptop without a GPU
    ("CUDA is not available on this machine"): the check was made on the driver."""
    from vicinal.execution.jobs import run_job
    from vicinal.execution.plan import load_run_data, plan_jobs

    plan = _ray_plan(tmp_path, address="10.0.0.1:6379")
    assert plan.device is None
    rd = load_run_data(plan.suite, None, False)
    jobs = plan_jobs(plan, rd)
    assert [j.device for j in jobs] == ["cuda", "cuda"]
    # Where a run executes, the device is checked: here (no GPU) that is one clear error.
    with pytest.raises(VicinalError, match="CUDA is not available on this machine"):
        run_job(jobs[0], rd, SilentReporter())


@needs_ray
def test_a_typo_in_the_device_is_still_refused_before_any_work(tmp_path):
    with pytest.raises(VicinalError, match=r"--device cdua with --executor ray: .* auto, cpu or cuda"):
        _ray_plan(tmp_path, device="cdua", address="10.0.0.1:6379")


class FakeRay:
    """What ``RayExecutor._run`` calls of Ray: functions made remote with their options, tasks submitted
    with theirs; every task answers with a failure (nothing runs)."""

    def __init__(self):
        self.made: list[tuple[object, dict]] = []
        self.submitted: list[tuple[dict, tuple]] = []

    def remote(self, *function, **options):
        def make(target):
            self.made.append((target, options))
            return FakeRemote(self, target)

        return make(function[0]) if function else make

    def put(self, value):
        return "data"

    def wait(self, refs, num_returns, timeout):
        return list(refs), []

    def get(self, ref):
        from vicinal.execution.ray import RemoteFailure

        return [] if ref == "events" else RemoteFailure("not run: a stand-in for Ray", "", True)

    def kill(self, actor):
        pass

    # The event hub is placed on the driver's node, and a restarting hub's poll is skipped.
    exceptions = types.SimpleNamespace(RayActorError=RuntimeError)

    def get_runtime_context(self):
        return types.SimpleNamespace(get_node_id=lambda: "0" * 56)

    def cancel(self, ref, force):
        pass


class FakeRemote:
    def __init__(self, ray, target):
        self.ray, self.target, self.options_given = ray, target, {}

    def options(self, **options):
        self.options_given = options
        return self

    def remote(self, *args):
        from vicinal.execution.ray import EventHub

        if self.target is EventHub:
            return FakeHub()
        self.ray.submitted.append((self.options_given, args))
        return object()


class FakeHub:
    class _Call:
        def __init__(self, value):
            self.value = value

        def remote(self, *args):
            return self.value

    drain, post = _Call("events"), _Call(None)


@needs_ray
@pytest.mark.parametrize(
    ("gpus", "device", "max_calls"), [(0.5, "cuda", 1), (1.0, "cuda", 1), (0.0, "cpu", 0)]
)
def test_each_gpu_run_gets_a_fresh_worker(gpus, device, max_calls, tmp_path):
    """Before, ``run_attempt`` got its GPUs through ``.options()`` only, where Ray does not apply its GPU
    default ``max_calls=1``: a worker kept its CUDA context, cached memory and first GPU for the next run."""
    import ray

    from vicinal.execution.plan import load_run_data, plan_jobs
    from vicinal.execution.ray import run_attempt

    plan = _ray_plan(tmp_path, device="auto", address="10.0.0.1:6379")
    rd = load_run_data(plan.suite, None, False)
    jobs = plan_jobs(plan, rd)
    executor = plan.executor
    executor.resources = {"num_cpus": 1.0, "num_gpus": gpus}
    fake = FakeRay()
    executor._run(fake, plan, rd, jobs)
    assert [options for target, options in fake.made if target is run_attempt] == [{"max_calls": max_calls}]
    assert len(fake.submitted) == 2
    for options, args in fake.submitted:
        assert {k: options[k] for k in ("num_gpus", "num_cpus", "max_retries", "retry_exceptions")} == {
            "num_gpus": gpus,
            "num_cpus": 1.0,
            "max_retries": 3,
            "retry_exceptions": False,
        }
        assert pickle.loads(args[1]).device == device
    # Real Ray accepts both sets of options (max_calls is refused by .options(), so it must not go there).
    made = ray.remote(**executor.remote_options())(run_attempt)
    made.options(**executor.task_options())
    assert made._default_options["max_calls"] == max_calls


@needs_ray
@pytest.mark.parametrize("gpus", [2, 1.5, 4])
def test_a_run_asks_for_one_gpu_at_most(gpus):
    """Before, ``--gpus-per-run 2`` reserved two GPUs for a run that trains on ``cuda:0`` only."""
    from vicinal.execution.ray import RayExecutor

    with pytest.raises(VicinalError, match=re.escape(f"--gpus-per-run {gpus:g}: a run trains on one GPU")):
        RayExecutor(gpus_per_run=gpus, address="auto")


def test_reusing_a_result_trained_on_another_device_says_so(tmp_path):
    """A run's identity leaves the device out (CPU and GPU seeds join one row); the reuse note names it."""
    import json

    import vicinal
    from vicinal.api import prepare
    from vicinal.execution.options import Overrides, RunOptions
    from vicinal.execution.plan import load_run_data, plan_jobs

    class Notes(SilentReporter):
        def __init__(self):
            self.notes: list[str] = []

        def note(self, message: str) -> None:
            self.notes.append(message)

    run = {"methods": ["erm"], "seeds": [0], "epochs": 1, "limit_train": 32, "evaluators": ["clean"]}
    folders = {"results_dir": tmp_path / "results", "cache_dir": tmp_path / "cache"}
    (result,) = vicinal.run("digits", **run, device="cpu", **folders)
    doc = json.loads(result.path.read_text())
    doc["environment"]["device"]["type"] = "cuda:0"
    doc["training"]["precision"] = "bfloat16 autocast"
    result.path.write_text(json.dumps(doc))
    notes = Notes()
    plan = prepare("digits", Overrides(**run), RunOptions(device="cpu", reporter=notes, **folders))
    assert plan_jobs(plan, load_run_data(plan.suite, None, False)) == []
    (note,) = notes.notes
    assert note.endswith(", trained on cuda:0 (bfloat16 autocast); --force recomputes"), note
