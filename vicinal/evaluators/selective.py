"""Selective prediction: how the risk on the clean test split falls as the model abstains on its least
confident predictions.

The predictions are ranked by their maximum softmax probability (and, beside it, by the MSP after the
temperature scaling every evaluator applies, ``EvalContext.temperature``); from that ranking
(:mod:`vicinal.store.selective_metrics`) come AURC, E-AURC, AUGRC, the risk at chosen coverages
(``vicinal leaderboard --by coverage``: the risk–coverage curve, drawn per method in the report) and the
coverage at chosen risks. Per example the ranking score and correctness are stored, so ``vicinal compare``
puts paired intervals on every metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vicinal.core.errors import VicinalError
from vicinal.core.hparams import hp
from vicinal.evaluation.evaluator import EvalContext, Evaluator, MetricInfo, register_evaluator
from vicinal.store import selective_metrics as sm
from vicinal.store.declarations import Artifact, Breakdown, FigureSpec, PanelSpec
from vicinal.store.detection_metrics import log_msp

_HINT = "run the selective evaluator (every built-in suite has it)"
#: Metric-name suffix → (per-example column, label suffix, what ranks the predictions).
RANKINGS = {
    "": ("rank_msp", "", "the maximum softmax probability"),
    "_ts": ("rank_msp_ts", "·TS", "the maximum softmax probability after temperature scaling"),
}


def _key(value: float) -> str:
    return f"{value:g}"


@register_evaluator("selective")
class SelectiveEvaluator(Evaluator):
    summary = (
        "selective prediction on the clean test split: AURC, E-AURC, AUGRC, risk at coverages, coverage at "
        "risks, from the MSP and the temperature-scaled MSP; risk–coverage curves"
    )
    group = "selective prediction"
    breakdowns = (Breakdown("coverage", "coverage", "risk", column="{key} %", hint=_HINT),)
    figures = (
        FigureSpec(
            "lines",
            "Risk versus coverage",
            (
                PanelSpec("risk of the most confident predictions", "risk", "", "coverage (%)", "risk"),
                PanelSpec("after temperature scaling", "risk_ts", "", "coverage (%)", "risk"),
            ),
            caption="Error rate among the most confident share of the test predictions (ranked by the "
            "maximum softmax probability), per method; the band is ± one std over seeds.",
            by="coverage",
            alt="risk versus coverage per method",
        ),
    )
    artifacts = {
        "risk-coverage": Artifact(
            "Risk–coverage curves",
            "Risk among the most confident predictions at every coverage, ranked by the MSP, by the MSP "
            "after temperature scaling, and by the oracle that keeps every correct prediction first "
            "(lowest seed per row).",
        )
    }

    @dataclass
    class Config:
        coverages: list[float] = hp(
            [10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100],
            "coverages (%) at which the risk is reported (the risk–coverage curve)",
            gt=0,
            le=100,
        )
        risks: list[float] = hp([1, 5], "risks (%) at which the largest coverage is reported", ge=0, le=100)
        temperature_scaling: bool = hp(True, "also rank by the MSP after the validation-fitted temperature")
        figure: bool = hp(True, "write risk–coverage curves beside the result file")

    def __init__(self, config=None):
        super().__init__(config)
        c = self.config
        for what, values in (("coverages", c.coverages), ("risks", c.risks)):
            if len(set(values)) != len(values):
                raise VicinalError(f"evaluators.selective.{what} = {values} repeats a value")
        self.coverages, self.risks = sorted(c.coverages), sorted(c.risks)

    def _rankings(self) -> dict[str, tuple[str, str, str]]:
        return {k: v for k, v in RANKINGS.items() if k == "" or self.config.temperature_scaling}

    def metric_info(self) -> dict[str, MetricInfo]:
        info: dict[str, MetricInfo] = {}
        for sfx, (_, label, ranked) in self._rankings().items():
            by = f"; ranked by {ranked}"
            info[f"aurc{sfx}"] = MetricInfo(
                f"AURC{label}",
                False,
                percent=True,
                headline=not sfx,
                description="area under the risk–coverage curve (torch-uncertainty's trapezoid over "
                "coverages 1/N … 1, rescaled to [0, 1]; tied confidences in random order, in expectation)"
                + by,
            )
            info[f"eaurc{sfx}"] = MetricInfo(
                f"E-AURC{label}",
                False,
                percent=True,
                headline=False,
                description="excess AURC: AURC minus that of the oracle keeping every correct prediction "
                "first (same finite-sample formula)" + by,
            )
            info[f"augrc{sfx}"] = MetricInfo(
                f"AUGRC{label}",
                False,
                percent=True,
                headline=not sfx,
                description="area under the generalised risk–coverage curve (Traub et al. 2024): the "
                "share of all predictions kept and wrong, over coverages" + by,
            )
            for cov in self.coverages:
                info[f"risk{sfx}@{_key(cov)}"] = MetricInfo(
                    f"risk{label} @{_key(cov)}%",
                    False,
                    percent=True,
                    headline=False,
                    description=f"error rate of the ⌈N·{_key(cov)} %⌉ most confident predictions" + by,
                    family=f"risk{sfx}",
                    by="coverage",
                    key=_key(cov),
                )
            for risk in self.risks:
                info[f"cov{sfx}@{_key(risk)}"] = MetricInfo(
                    f"cov{label} @{_key(risk)}% risk",
                    True,
                    percent=True,
                    headline=False,
                    description=f"largest coverage whose risk is at most {_key(risk)} % (0 where none is)"
                    + by,
                )
        return info

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        c = self.config
        logits = ctx.test_logits.numpy()
        correct = logits.argmax(1) == ctx.test_labels.numpy()
        temperature = ctx.temperature if c.temperature_scaling else None
        if c.temperature_scaling and temperature is None:
            temperature = 1.0  # no validation split: T = 1
        columns = {"rank_msp": log_msp(logits)}
        if temperature is not None:
            columns["rank_msp_ts"] = log_msp(logits / temperature)
        # Per example, for paired comparisons: the ranks of the scores (all the metrics read; exact in 16
        # bits) beside the test split's correctness.
        ranks = {k: sm.dense_ranks(v) for k, v in columns.items()}
        ctx.record_examples("test", ctx.test_examples(), correct=correct, **ranks)
        out: dict[str, float] = {}
        for sfx, (column, _, _) in self._rankings().items():
            s = columns[column]
            stat = {"target": "correct"}
            out[f"aurc{sfx}"] = sm.aurc(s, correct)
            out[f"eaurc{sfx}"] = sm.eaurc(s, correct)
            out[f"augrc{sfx}"] = sm.augrc(s, correct)
            for kind in ("aurc", "eaurc", "augrc"):
                ctx.statistic(f"{kind}{sfx}", kind, ["test"], column, **stat)
            for cov in self.coverages:
                name = f"risk{sfx}@{_key(cov)}"
                out[name] = sm.risk_at_coverage(s, correct, cov / 100)
                ctx.statistic(name, "risk_at_coverage", ["test"], column, level=cov / 100, **stat)
            for risk in self.risks:
                name = f"cov{sfx}@{_key(risk)}"
                out[name] = sm.coverage_at_risk(s, correct, risk / 100)
                ctx.statistic(name, "coverage_at_risk", ["test"], column, level=risk / 100, **stat)
        if c.figure:
            path = ctx.artifact_path("risk-coverage")
            if path is not None:
                _curves(columns, correct, out, ctx.title, path)
        return out

    def protocol(self) -> dict:
        c = self.config
        return {
            "split": "test",
            "ranking": "maximum softmax probability (by its logarithm, which keeps the order of predictions "
            "whose MSP rounds to 1)",
            "temperature": (
                # the rule, not the fitted value: a measurement differs per seed, and a protocol that does
                # would split one configuration's seeds into rows of one
                "the run's validation-fitted T (EvalContext.temperature, shared with the calibration "
                "evaluator; T = 1 without a validation split)"
                if c.temperature_scaling
                else "not used"
            ),
            "coverages": self.coverages,
            "risks": self.risks,
            "aurc": "torch-uncertainty's: trapezoid over coverages k/N, k = 1 … N, divided by 1 − 1/N",
            "ties": "tied confidences are abstained on in random order: every metric is its expectation "
            "over the orders (torch-uncertainty takes whatever order its sort leaves)",
            "coverage at risk": "largest k/N with risk ≤ the level; 0 where none (torch-uncertainty: NaN)",
            "library": "vicinal.store.selective_metrics (checked against torch-uncertainty 0.13 in "
            "tests/test_selective.py)",
        }


def _curves(
    columns: dict[str, np.ndarray], correct: np.ndarray, out: dict[str, float], title: str, path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vicinal.core.plots import save_figure

    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.14)  # by hand: a tight layout draws twice
    lines = [("MSP", columns["rank_msp"], out["aurc"])]
    if "rank_msp_ts" in columns:
        lines.append(("MSP·TS", columns["rank_msp_ts"], out["aurc_ts"]))
    oracle = correct.astype(np.float64)
    lines.append(("oracle", oracle, sm.aurc(oracle, correct)))
    for label, scores, area in lines:
        coverage, risk = sm.risk_coverage_curve(scores, correct)
        style = {"ls": "--", "color": "0.5"} if label == "oracle" else {}
        ax.plot(100 * coverage, 100 * risk, lw=1.3, label=f"{label} · AURC {100 * area:.2f}%", **style)
    ax.set_xlabel("coverage (%): the most confident predictions kept")
    ax.set_ylabel("risk (%): their error rate")
    ax.set_xlim(0, 100)
    ax.set_ylim(bottom=0)
    ax.grid(True, ls=":", alpha=0.6)
    ax.legend(fontsize=8)
    ax.set_title(f"{title}: risk–coverage", fontsize=10)
    save_figure(fig, path, tight=False)
    plt.close(fig)
