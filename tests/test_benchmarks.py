"""Speed benchmarks (pytest-benchmark). The default test run executes each once as a smoke test
(`--benchmark-disable`); `pytest tests/test_benchmarks.py --benchmark-enable` measures them, and the
figures go to BENCHMARKS.md with the machine they came from."""

import pytest
import torch
from bench_store import write_store
from helpers import benchmarks_enabled

from vicinal.board.boards import build_boards
from vicinal.board.formats import FORMATS
from vicinal.core.hparams import build_config
from vicinal.core.reporting import SilentReporter
from vicinal.data.datasets import ImageSet
from vicinal.store.results import load_store
from vicinal.training.method import PrepareContext, get_method
from vicinal.training.models import build_model
from vicinal.training.rng import RunRandom

BATCH = 128


#: Benchmark id → (method, settings). The zoo's equal-compute variants are measured beside their defaults.
STEP_METHODS = {
    "erm": ("erm", {}),
    "mixup": ("mixup", {}),
    "manifold-mixup": ("manifold-mixup", {}),
    "cutmix": ("cutmix", {}),
    "varmixup": ("varmixup", {"latent_dim": 64, "vae_epochs": 1}),
    "gaussian-vrm": ("gaussian-vrm", {}),
    "regmixup": ("regmixup", {}),
    "regmixup-half": ("regmixup", {"train_on": "half"}),
    "augmix": ("augmix", {}),
    "augmix-nojsd": ("augmix", {"jsd": False}),
    "fmix": ("fmix", {}),
    "noisy-feature-mixup": ("noisy-feature-mixup", {}),
}


@pytest.mark.parametrize("variant", list(STEP_METHODS))
def test_training_step_small_cnn(benchmark, variant, tmp_path):
    """One optimiser step (the method's mixing or augmentation, forward, backward, update) of the small CNN
    on a 128-image batch, CPU."""
    torch.manual_seed(0)
    name, values = STEP_METHODS[variant]
    cls = get_method(name)
    method = cls(build_config(cls.Config, values, name))
    train = ImageSet((torch.rand(256, 3, 32, 32) * 255).to(torch.uint8), torch.randint(0, 10, (256,)))
    method.prepare(
        PrepareContext(train, 10, "bench", "fp", 0, torch.device("cpu"), tmp_path, SilentReporter())
    )
    model = build_model("small-cnn", 10, [0.5] * 3, [0.25] * 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = train.images[:BATCH].float() / 255, train.labels[:BATCH]
    rng = RunRandom(0)

    def step():
        out = method.training_step(model, x, y, rng)
        opt.zero_grad()
        out.loss.backward()
        opt.step()

    benchmark.extra_info["images_per_step"] = BATCH
    benchmark(step)


@pytest.fixture(scope="module")
def thousand_results(tmp_path_factory):
    """1,000 result files shaped like real ones (schema 2, ~15 KB): 50 methods × 20 seeds."""
    return write_store(tmp_path_factory.mktemp("store"), 1000)


def test_leaderboard_over_1000_result_files(benchmark, thousand_results):
    def render():
        return build_boards(load_store(thousand_results))

    boards = benchmark(render)
    assert len(boards[0].rows) == 50 and all(len(r.seeds) == 20 for r in boards[0].rows)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_leaderboard_format_over_1000_result_files(benchmark, thousand_results, fmt):
    """Read, aggregate and render: what `vicinal leaderboard --format FMT` does after start-up."""

    def render():
        return FORMATS[fmt](build_boards(load_store(thousand_results)))

    text = benchmark(render)
    assert "method-49" in text


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "attack_model" in metafunc.fixturenames:  # the ResNet only when timed (40 s once, under load)
        models = ["small-cnn", "preactresnet18"] if benchmarks_enabled(metafunc.config) else ["small-cnn"]
        metafunc.parametrize("attack_model", models)


@pytest.mark.parametrize("attack", ["fgsm", "pgd10"])
def test_attack_cost(benchmark, attack_model, attack):
    """Robust accuracy of a 32-image batch at one L∞ radius (foolbox, CPU); divide by 32 for per image.
    The default run smoke-tests the small CNN; ``--benchmark-enable`` times the PreAct ResNet-18 too."""
    model_name = attack_model
    from vicinal.evaluators.adversarial import import_foolbox, robust_accuracy

    fb = import_foolbox()
    torch.manual_seed(0)
    model = build_model(model_name, 10, [0.5] * 3, [0.25] * 3).eval()
    images = (torch.rand(32, 3, 32, 32) * 255).to(torch.uint8)
    labels = torch.randint(0, 10, (32,))
    obj = fb.attacks.FGSM() if attack == "fgsm" else fb.attacks.LinfPGD(steps=10, rel_stepsize=0.25)
    benchmark.extra_info["images"] = 32
    accs = benchmark(robust_accuracy, model, images, labels, obj, [8 / 255], 32, 0, torch.device("cpu"))
    assert 0 <= accs[0] <= 1
