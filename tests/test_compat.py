"""The 0.1 import paths keep working for one version: each old module path is the new module (the same
object), with one FutureWarning naming the new path; plugins written against the 0.1 documentation run
unchanged through the command line."""

from __future__ import annotations

import importlib
import sys
import textwrap
import warnings

import pytest
from helpers import run_cli

from vicinal import _compat


@pytest.mark.parametrize("old", sorted(_compat.MOVED))
def test_every_old_module_path_is_the_new_module(old):
    new = _compat.MOVED[old]
    sys.modules.pop(old, None)
    _compat._warned.discard(old)
    with pytest.warns(FutureWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_the_warning_comes_once_and_points_at_the_importing_line():
    sys.modules.pop("vicinal.rng", None)
    _compat._warned.discard("vicinal.rng")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from vicinal.rng import RunRandom  # noqa: F401  (the import is the test)

        sys.modules.pop("vicinal.rng")
        import vicinal.rng  # noqa: F401
    moved = [w for w in caught if issubclass(w.category, FutureWarning)]
    assert len(moved) == 1
    assert moved[0].filename == __file__


@pytest.mark.parametrize(
    ("package", "name"),
    [
        ("vicinal.training", "train"),
        ("vicinal.evaluation", "register_evaluator"),
        ("vicinal.external", "probe"),
    ],
)
def test_names_of_old_modules_that_became_packages(package, name):
    _compat._warned.discard(f"{package}.{name}")
    new = _compat.MOVED_NAMES[package][name]
    with pytest.warns(FutureWarning, match=f"{package}.{name} moved to {new}.{name}"):
        value = getattr(importlib.import_module(package), name)
    assert value is getattr(importlib.import_module(new), name)
    with pytest.raises(AttributeError):
        importlib.import_module(package).no_such_name  # noqa: B018


def test_the_api_functions_are_not_shadowed_by_modules():
    """``vicinal.leaderboard`` and ``vicinal.compare`` are functions, even after the board's modules load."""
    import vicinal
    import vicinal.board.boards
    import vicinal.board.compare

    assert callable(vicinal.leaderboard) and vicinal.leaderboard.__module__ == "vicinal.api"
    assert callable(vicinal.compare) and vicinal.compare.__module__ == "vicinal.api"
    assert "results_dir" in vicinal.leaderboard.__doc__


# A method and an evaluator with a figure as the 0.1 documentation wrote them: the method draws from
# vicinal.rng and reads vicinal.method's context; the evaluator declares its metrics and figure with
# vicinal.declarations and runs vicinal.evaluation's seeded_subset.
OLD_PLUGIN = """
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vicinal import Evaluator, MetricInfo, Method, StepOutput, hp, register_evaluator, register_method
from vicinal.declarations import Breakdown, FigureSpec, PanelSpec
from vicinal.evaluation import seeded_subset
from vicinal.method import PrepareContext
from vicinal.rng import RunRandom


@register_method("old-noise")
class OldNoise(Method):
    mixes_in = "none"
    summary = "Gaussian input noise, written against vicinal 0.1's import paths"

    @dataclass
    class Config:
        sigma: float = hp(0.05, "noise level", ge=0)

    def prepare(self, ctx: PrepareContext) -> dict:
        return {"train_images": len(ctx.train)}

    def training_step(self, model, x, y, rng: RunRandom):
        logits = model((x + self.config.sigma * rng.normal_like(x)).clamp(0, 1))
        loss = F.cross_entropy(logits, y)
        return StepOutput(loss, correct=float((logits.argmax(1) == y).sum()), count=len(y))


@register_evaluator("old-occlusion")
class OldOcclusion(Evaluator):
    summary = "accuracy when a grey square hides part of each test image"

    @dataclass
    class Config:
        sizes: list[int] = hp([4, 8], "side of the square in pixels", ge=1)

    breakdowns = (Breakdown("patch", "square size", "occ_acc", column="{key} px"),)
    figures = (
        FigureSpec(
            "lines",
            "Accuracy versus occlusion",
            (PanelSpec("accuracy versus square size", "occ_acc", xlabel="side (px)", ylabel="accuracy"),),
            by="patch",
        ),
    )

    def metric_info(self):
        info = {"occ_acc": MetricInfo("acc-occ", True, percent=True)}
        for k in self.config.sizes:
            info[f"occ_acc@{k}"] = MetricInfo(
                f"acc occ {k}px", True, percent=True, headline=False, family="occ_acc", by="patch", key=str(k)
            )
        return info

    def evaluate(self, ctx):
        index = seeded_subset(len(ctx.data.test), 64, 0)
        images, labels = ctx.data.test.images[index], ctx.data.test.labels[index]
        out = {}
        for k in self.config.sizes:
            occluded = images.clone()
            occluded[..., :k, :k] = 128
            out[f"occ_acc@{k}"] = float((ctx.predict(occluded).argmax(1) == labels).double().mean())
        out["occ_acc"] = sum(out.values()) / len(self.config.sizes)
        return out
"""


def test_a_plugin_written_against_the_old_paths_runs_unchanged(tmp_path):
    (tmp_path / "old_plugin.py").write_text(textwrap.dedent(OLD_PLUGIN))
    env = {"VICINAL_RESULTS_DIR": str(tmp_path / "r"), "VICINAL_CACHE_DIR": str(tmp_path / "c")}
    out = run_cli(
        "run",
        "--plugin",
        "old_plugin.py",
        "--suite",
        "digits",
        "--methods",
        "old-noise",
        "--evaluators",
        "clean,old-occlusion",
        "--epochs",
        "1",
        "--seeds",
        "0",
        "--quiet",
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    # One warning per old path, naming the new one; the run itself is unaffected.
    for old, new in [
        ("vicinal.rng", "vicinal.training.rng"),
        ("vicinal.declarations", "vicinal.store.declarations"),
    ]:
        assert f"{old} moved to {new}" in out.stderr
    board = run_cli("leaderboard", "--by", "patch", "--results", str(tmp_path / "r"), cwd=tmp_path, env=env)
    assert board.returncode == 0 and "old-noise" in board.stdout, board.stderr
