"""Training is deterministic for a seed, and an interrupted run resumes to the same weights."""

import pytest
import torch

from vicinal.core.reporting import SilentReporter
from vicinal.data.datasets import load_dataset
from vicinal.training.loop import lr_at, train
from vicinal.training.method import get_method
from vicinal.training.models import build_model
from vicinal.training.recipe import Recipe
from vicinal.training.rng import seed_everything


def _setup(epochs):
    data = load_dataset("digits").limit_train(200)
    seed_everything(0)
    model = build_model("small-cnn", 10, [0.1] * 3, [0.3] * 3)
    recipe = Recipe(epochs=epochs, batch_size=50, lr=0.05, schedule="cosine", milestones=[0.5, 0.75])
    return data, model, recipe


def _train(epochs, checkpoint=None):
    data, model, recipe = _setup(epochs)
    method = get_method("mixup")()
    summary = train(
        model, method, data.train, recipe, torch.device("cpu"), 0, SilentReporter(), "t", checkpoint
    )
    return model, summary


def test_same_seed_same_weights():
    a, _ = _train(2)
    b, _ = _train(2)
    for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q)


def test_resume_from_checkpoint_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    reference, _ = _train(3)
    ckpt = tmp_path / "run.pt"

    # Interrupt the run during epoch 2: Ctrl-C arrives as KeyboardInterrupt inside the loop.
    import vicinal.training.loop as training

    calls = {"n": 0}
    real_crop = training.random_crop_flip

    def interrupting_crop(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # 4 batches per epoch: this is the 2nd batch of epoch 2
            raise KeyboardInterrupt
        return real_crop(*args, **kwargs)

    monkeypatch.setattr(training, "random_crop_flip", interrupting_crop)
    with pytest.raises(KeyboardInterrupt):
        _train(3, ckpt)
    monkeypatch.setattr(training, "random_crop_flip", real_crop)
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1

    resumed, summary = _train(3, ckpt)
    assert summary.resumed_from_epoch == 1 and len(summary.history) == 3
    for p, q in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(p, q)


def test_step_schedule_decays_at_the_milestones():
    recipe = Recipe(epochs=200, lr=0.1, schedule="step", milestones=[0.5, 0.75], gamma=0.1)
    assert recipe.milestone_epochs() == [100, 150]
    assert [lr_at(recipe, e) for e in (0, 99, 100, 149, 150, 199)] == [
        0.1,
        0.1,
        0.1 * 0.1,
        0.1 * 0.1,
        0.1 * 0.1 * 0.1,
        0.1 * 0.1 * 0.1,
    ]


def test_damaged_checkpoint_means_a_fresh_start(tmp_path):
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    reference, _ = _train(1)
    model, summary = _train(1, ckpt)
    assert summary.resumed_from_epoch == 0
    for p, q in zip(reference.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(p, q)


def test_atomic_writes_replace_whole_files_with_the_usual_permissions(tmp_path):
    import os

    from vicinal.core.io import atomic_write_text

    target = tmp_path / "sub" / "r.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and [p.name for p in target.parent.iterdir()] == ["r.json"]
    mask = os.umask(0o022)
    try:
        atomic_write_text(target, "x")
        assert target.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
    finally:
        os.umask(mask)


def test_a_log_gets_epoch_lines_at_a_readable_rate(monkeypatch):
    """Not on a terminal, short epochs print the first and the last epoch and one line per interval between,
    not one per epoch; with a zero interval every epoch has its line."""
    import io

    import vicinal.core.reporting as reporting
    from vicinal.core.reporting import LineReporter

    def lines(every: float) -> list[str]:
        monkeypatch.setattr(reporting, "LINE_EVERY_S", every)
        data, model, recipe = _setup(4)
        out = io.StringIO()
        train(model, get_method("erm")(), data.train, recipe, torch.device("cpu"), 0, LineReporter(out), "t")
        return [line for line in out.getvalue().splitlines() if ": epoch " in line]

    assert [line.split(": ")[1].split(" ·")[0] for line in lines(3600.0)] == ["epoch 1/4", "epoch 4/4"]
    assert len(lines(0.0)) == 4


def test_a_long_task_in_a_log_says_where_it_is_at_least_every_heartbeat():
    """In a log, long work was silent between its own lines (19 minutes of attacks after "evaluate
    [2/5]: calibration"). A task that advances for HEARTBEAT_S without a line prints how far it is, its
    rate and the time left; a short one prints nothing extra."""
    import io

    from vicinal.core.reporting import HEARTBEAT_S, LineReporter

    now = [0.0]
    out = io.StringIO()
    reporter = LineReporter(out, clock=lambda: now[0])
    short = reporter.task("quick", total=10)
    for _ in range(10):
        now[0] += 2.0
        short.advance(1)
    assert out.getvalue() == ""  # 20 s: no heartbeat

    task = reporter.task("erm · seed 0 · adversarial", total=3000)
    said: list[float] = []
    for _ in range(300):  # 10 images every 4 s: 20 minutes
        now[0] += 4.0
        before = out.getvalue().count("\n")
        task.advance(10, attack="pgd l2")
        if out.getvalue().count("\n") > before:
            said.append(now[0])
    gaps = [b - a for a, b in zip([20.0, *said], said, strict=False)]
    assert len(said) >= 20 * 60 / 60 and max(gaps) <= 60 and min(gaps) >= HEARTBEAT_S
    first = out.getvalue().splitlines()[0]
    assert first.startswith("erm · seed 0 · adversarial [80/3,000, 3%]: attack pgd l2 · 2.5/s · ")
    assert "19 min 28 s left" in first and "32 s so far" in first
    task.line("done")  # a line of its own restarts the interval
    now[0] += HEARTBEAT_S - 1
    lines = out.getvalue().count("\n")
    task.advance(0)
    assert out.getvalue().count("\n") == lines
