"""Calibration of the clean test predictions, before and after post-hoc temperature scaling."""

from dataclasses import dataclass

from vicinal.core.hparams import hp
from vicinal.evaluation.calibration_metrics import (
    MAX_BINS,
    brier,
    calibration_metrics,
    nll,
    reliability_bins,
)
from vicinal.evaluation.evaluator import EvalContext, Evaluator, MetricInfo, register_evaluator
from vicinal.store.declarations import Artifact

_BASE = {
    "ece": ("ECE", "expected calibration error of the top-1 confidence, equal-width bins (netcal)", True),
    "ace": ("adaECE", "adaptive ECE: equal-mass bins, weighted by bin size", False),
    "mce": ("MCE", "maximum calibration error over the equal-width bins (netcal)", False),
    "cw_ece": ("cwECE", "classwise ECE (Kull et al. 2019), equal-width bins", False),
    "oe": ("OE", "overconfidence error (Thulasidasan et al. 2019), equal-width bins", True),
}


def _metric_table() -> dict[str, MetricInfo]:
    table = {
        k: MetricInfo(label, False, percent=True, description=d, headline=h)
        for k, (label, d, h) in _BASE.items()
    }
    for k, (label, d, _) in _BASE.items():
        table[f"{k}_ts"] = MetricInfo(
            f"{label}·TS",
            False,
            percent=True,
            headline=(k == "ece"),
            description=f"{d}, after temperature scaling",
        )
    table["nll_ts"] = MetricInfo("NLL·TS", False, description="NLL after temperature scaling", headline=False)
    table["brier_ts"] = MetricInfo(
        "Brier·TS", False, description="Brier after temperature scaling", headline=False
    )
    table["temperature"] = MetricInfo(
        "T",
        False,
        description="temperature applied before the ·TS metrics: fitted on the validation split (>1: the "
        "model was overconfident there), or 1 where the fit is degenerate (see T fitted)",
        headline=False,
    )
    table["temperature_fitted"] = MetricInfo(
        "T fitted",
        True,
        percent=True,
        description="share of runs whose temperature was fitted; 0 for a run whose validation split is "
        "classified perfectly (its NLL has no minimiser) or whose minimum lies on the search bound: "
        "there T = 1 is applied and the ·TS metrics equal the unscaled ones",
        headline=False,
    )
    table["val_errors"] = MetricInfo(
        "val errors",
        False,
        description="validation images not classified correctly (0: a separable split, T not identifiable)",
        headline=False,
    )
    return table


@register_evaluator("calibration")
class CalibrationEvaluator(Evaluator):
    summary = (
        "ECE, adaptive ECE, MCE, classwise ECE and OE on the clean test split, before and after "
        "temperature scaling fitted on the validation split; reliability diagrams"
    )
    metrics = _metric_table()
    group = "accuracy & calibration"
    artifacts = {
        "reliability": Artifact(
            "Reliability diagrams",
            "Accuracy per confidence bin against the diagonal, before and after temperature scaling "
            "(the calibration evaluator's diagram of each configuration's lowest seed).",
        )
    }

    @dataclass
    class Config:
        bins: int = hp(
            15, "number of confidence bins (equal-width; equal-mass for adaptive ECE)", ge=1, le=MAX_BINS
        )
        temperature_scaling: bool = hp(True, "fit T on the validation split and report every metric after it")
        diagram: bool = hp(True, "write a reliability diagram PNG beside the result file")

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        bins = self.config.bins
        logits, labels = ctx.test_logits.numpy(), ctx.test_labels.numpy()
        out = calibration_metrics(logits, labels, bins)
        panels = [
            (
                "before temperature scaling",
                reliability_bins(logits, labels, bins),
                {"ECE": out["ece"], "OE": out["oe"]},
            )
        ]
        # Per example, for paired comparisons: ECE, OE and MCE are re-binned from the confidences.
        examples = ctx.test_examples()
        ctx.record_logits("test", examples, ctx.test_logits, ctx.test_labels)
        for kind in ("ece", "oe", "mce"):
            ctx.statistic(kind, kind, ["test"], "confidence", bins)
        fit = ctx.temperature_fit
        if self.config.temperature_scaling and fit is not None:
            t = fit.temperature
            scaled = logits / t
            ctx.record_logits(
                "test", examples, ctx.test_logits / t, ctx.test_labels, suffix="_ts", nll=True, brier=True
            )
            for kind in ("ece", "oe", "mce"):
                ctx.statistic(f"{kind}_ts", kind, ["test"], "confidence_ts", bins)
            ctx.statistic("nll_ts", "mean", ["test"], "nll_ts")
            ctx.statistic("brier_ts", "mean", ["test"], "brier_ts")
            out.update({f"{k}_ts": v for k, v in calibration_metrics(scaled, labels, bins).items()})
            out.update(nll_ts=nll(scaled, labels), brier_ts=brier(scaled, labels), temperature=t)
            out.update(temperature_fitted=float(fit.fitted), val_errors=float(fit.val_errors))
            panels.append(
                (
                    f"after temperature scaling ({fit.describe()})",
                    reliability_bins(scaled, labels, bins),
                    {"ECE": out["ece_ts"], "OE": out["oe_ts"]},
                )
            )
        if self.config.diagram:
            path = ctx.artifact_path("reliability")
            if path is not None:
                from vicinal.core.plots import reliability_diagram

                reliability_diagram(panels, ctx.title, path)
        return out

    def protocol(self) -> dict:
        import netcal

        return {
            "bins": self.config.bins,
            "binning": "equal-width over [0, 1] on the top-1 confidence (adaptive ECE: equal-mass)",
            "split": "test",
            "temperature_scaling": (
                "T fitted by minimising validation NLL over log T in [log 0.05, log 20] (scipy bounded "
                "scalar minimiser); the validation split is held out of the training images. Degenerate "
                "fits apply T = 1 (no scaling) and record temperature_fitted = 0: a validation split "
                "with no error (its NLL decreases as T → 0, so no minimiser exists) or a minimum on a "
                "bound of the search"
                if self.config.temperature_scaling
                else "off"
            ),
            "library": f"netcal {netcal.__version__} (ECE, MCE); adaptive ECE, classwise ECE, OE by vicinal",
        }
