"""Leaderboard aggregation and labelling from result dicts (the store's contents)."""

import statistics

import pytest

from vicinal.errors import VicinalError
from vicinal.leaderboard import build_boards, render_markdown
from vicinal.results import Store

INFO = {
    "acc": {"label": "acc", "higher_is_better": True, "percent": True},
    "ece": {"label": "ECE", "higher_is_better": False, "percent": True, "headline": False},
}


def _result(method, seed, acc, ece, run_id, **hyper):
    return {
        "schema": 1,
        "suite": "s",
        "method": method,
        "seed": seed,
        "run_id": run_id,
        "metrics": {"acc": acc, "ece": ece},
        "metric_info": INFO,
        "training": {"epochs": 3},
        "data": {"n_train": 100},
        "method_info": {"hyperparameters": hyper},
    }


def test_mean_std_sorting_and_variant_labels():
    store = Store(
        [
            _result("mixup", 0, 0.80, 0.05, "aaa", alpha=1.0),
            _result("mixup", 1, 0.84, 0.07, "aaa", alpha=1.0),
            _result("mixup", 0, 0.70, 0.02, "bbb", alpha=0.2),
            _result("erm", 0, 0.90, 0.09, "ccc"),
        ],
        [],
    )
    (board,) = build_boards(store)
    assert [r.label for r in board.rows] == ["erm", "mixup [alpha=1.0]", "mixup [alpha=0.2]"]
    assert board.metrics == ["acc"]  # ECE is not a headline metric
    top = board.rows[1].cells["acc"]
    assert top.mean == pytest.approx(0.82) and top.std == pytest.approx(statistics.stdev([0.80, 0.84]))
    assert top.n == 2 and board.rows[0].cells["acc"].std is None
    (by_ece,) = build_boards(store, sort="ece", metrics=["acc", "ece"])
    assert by_ece.rows[0].label == "mixup [alpha=0.2]"  # lowest ECE first
    md = render_markdown([by_ece])
    assert "82.00 ± 2.83" in md and "ECE % ↓" in md


def test_unknown_metric_and_suite_are_errors():
    store = Store([_result("erm", 0, 0.9, 0.1, "x")], [])
    with pytest.raises(VicinalError, match="available: acc, ece"):
        build_boards(store, metrics=["acc", "nope"])
    with pytest.raises(VicinalError, match="results exist for: s"):
        build_boards(store, suite="other")
