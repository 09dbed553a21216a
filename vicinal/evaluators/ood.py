"""Out-of-distribution detection: does the model score its test images above images of other kinds?

For each OOD set of the suite (:mod:`vicinal.data.ood_sets`: SVHN and the other CIFAR as downloads; uniform
and Gaussian noise and photograph patches made here), the in-distribution test split against that set,
under four in-distribution scores (:mod:`vicinal.store.detection_metrics`): the maximum softmax probability
(MSP), the maximum logit, the energy (temperature 1) and the MSP after temperature scaling with the
temperature the calibration evaluator applies (``EvalContext.temperature``: fitted once per run on the
validation split and shared by every evaluator, never refitted here). Metrics: AUROC, AUPR-In, AUPR-Out
and FPR at 95 % TPR, per OOD set (``vicinal leaderboard --by ood``) and their means over the sets. The
scores of every image are stored (one example space: the test split followed by every OOD set), so that
``vicinal compare`` puts paired intervals on every metric.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from vicinal.core.errors import VicinalError
from vicinal.core.hparams import hp
from vicinal.evaluation.evaluator import EvalContext, Evaluator, MetricInfo, register_evaluator
from vicinal.store import detection_metrics as dm
from vicinal.store.declarations import Artifact, Breakdown, FigureSpec, PanelSpec
from vicinal.store.outcomes import Examples
from vicinal.store.selective_metrics import dense_ranks

#: The measures: (label, higher is better, statistic kind, description).
MEASURES = {
    "auroc": (
        "AUROC",
        True,
        "auroc",
        "area under the ROC: P(an in-distribution image scores above an OOD one), a tie counting half",
    ),
    "aupr_in": ("AUPR-In", True, "aupr_in", "average precision with the in-distribution images as positives"),
    "aupr_out": (
        "AUPR-Out",
        True,
        "aupr_out",
        "average precision with the OOD images as positives, ranked by the negated score "
        "(torch-uncertainty's AUPR)",
    ),
    "fpr95": (
        "FPR95",
        False,
        "fpr_at_tpr",
        "share of OOD images accepted at the highest threshold that keeps at least 95 % of the "
        "in-distribution images (in-distribution positive; not torch-uncertainty's FPR95, which takes OOD "
        "as positive)",
    ),
}
#: The scores: metric-name suffix → (score key, label suffix, description).
SCORES = {
    "": ("msp", "", "maximum softmax probability"),
    "_maxlogit": ("maxlogit", "·ML", "maximum logit"),
    "_energy": ("energy", "·E", "energy score logsumexp(z), temperature 1"),
    "_ts": ("msp_ts", "·TS", "maximum softmax probability after temperature scaling"),
}
#: How figures name the scores.
_DISPLAY = {"msp": "MSP", "maxlogit": "max logit", "energy": "energy logsumexp(z)", "msp_ts": "MSP·TS"}
_HINT = "run the ood evaluator (the digits and CIFAR suites have it)"
#: The per-example set: the test split followed by every OOD set.
_SET = "ood"
_GROUP = "ood_set"


@register_evaluator("ood")
class OODEvaluator(Evaluator):
    summary = (
        "OOD detection of the test split against each OOD set (SVHN, CIFAR, noise, photo patches): AUROC, "
        "AUPR-In/Out, FPR95 from MSP, max logit, energy and temperature-scaled MSP; histograms, ROC curves"
    )
    group = "OOD detection"
    breakdowns = (Breakdown("ood", "OOD set", "ood_auroc", hint=_HINT),)
    figures = (
        FigureSpec(
            "heatmap",
            "OOD detection per OOD set",
            (PanelSpec("AUROC (MSP) per OOD set", "ood_auroc", ylabel="AUROC"),),
            caption="AUROC of the maximum softmax probability, test split against each OOD set; mean over "
            "seeds, per method (rows).",
            by="ood",
            alt="heat map of OOD AUROC per method and OOD set",
        ),
        FigureSpec(
            "bars",
            "OOD detection per score",
            tuple(
                PanelSpec(f"AUROC, {_DISPLAY[score]}", metric=f"ood_auroc{sfx}")
                for sfx, (score, _, _) in SCORES.items()
            ),
            caption="AUROC averaged over the OOD sets, for the MSP, the maximum logit (ML), the energy (E) "
            "and the MSP after temperature scaling (TS); bars are seed means, whiskers ± one std.",
            alt="bars of mean OOD AUROC per score and method",
        ),
    )
    artifacts = {
        "ood": Artifact(
            "OOD score histograms and ROC curves",
            "Per OOD set: the maximum softmax probability on the test split (in-distribution) against the "
            "set's, and the ROC of every score with the in-distribution images positive (lowest seed per "
            "row).",
            layout="stack",
        ),
    }

    @dataclass
    class Config:
        sets: list[str] = hp(
            ["uniform", "gaussian", "patches"],
            "OOD sets: svhn, cifar100, cifar10 (downloads: `vicinal download NAME`); uniform, gaussian, "
            "patches (generated)",
        )
        n_generated: int = hp(1000, "images per generated set (uniform, gaussian, patches)", ge=1)
        n_samples: int = hp(0, "images per downloaded set: a seeded subset; 0 = all", ge=0)
        seed: int = hp(0, "seed of the generated sets and of the subsets", ge=0)
        paths: list[str] = hp([], "local copies of downloaded sets: NAME=PATH (the file or its folder)")
        temperature_scaling: bool = hp(True, "also score the MSP after the validation-fitted temperature")
        figures: bool = hp(True, "write score histograms and ROC curves beside the result file")

    def __init__(self, config=None):
        super().__init__(config)
        from vicinal.data.ood_sets import get_ood_set

        c = self.config
        if not c.sets:
            raise VicinalError("evaluators.ood.sets is empty: name at least one OOD set")
        if len(set(c.sets)) != len(c.sets):
            raise VicinalError(f"evaluators.ood.sets = {c.sets} names a set twice")
        self.sources = [get_ood_set(name) for name in c.sets]
        self.paths: dict[str, str] = {}
        for item in c.paths:
            name, sep, path = item.partition("=")
            if not sep or not path or name not in c.sets:
                raise VicinalError(
                    f"evaluators.ood.paths: {item!r} is not NAME=PATH for one of the sets {', '.join(c.sets)}"
                )
            self.paths[name] = path
        self.source_info: dict = {}

    # ------------------------------------------------------------ declarations

    def _scores(self) -> dict[str, tuple[str, str, str]]:
        return {k: v for k, v in SCORES.items() if k != "_ts" or self.config.temperature_scaling}

    def metric_info(self) -> dict[str, MetricInfo]:
        info: dict[str, MetricInfo] = {}
        sets = self.config.sets
        for sfx, (_, score_label, score_text) in self._scores().items():
            for measure, (label, better, _, text) in MEASURES.items():
                family = f"ood_{measure}{sfx}"
                info[family] = MetricInfo(
                    f"{label}{score_label}",
                    better,
                    percent=True,
                    headline=(sfx == "" and measure in ("auroc", "fpr95")),
                    description=f"{text}; score: {score_text}; mean over the OOD sets {', '.join(sets)}",
                )
                for name in sets:
                    info[f"{family}/{name}"] = MetricInfo(
                        f"{label}{score_label} {name}",
                        better,
                        percent=True,
                        headline=False,
                        description=f"{text}; score: {score_text}; test split against OOD set {name}",
                        family=family,
                        by="ood",
                        key=name,
                    )
        return info

    def check_inputs(self, ctx: EvalContext) -> None:
        """Every downloaded OOD set is found before training starts; a missing one is one message naming
        the command that fetches it (generated sets need nothing)."""
        from vicinal.data.datasets import resolve_data_dir

        data_dir = ctx.data_dir or resolve_data_dir(None)
        problems = [s.missing(data_dir, self.paths.get(s.name, "")) for s in self.sources]
        problems = [p for p in problems if p]
        if problems:
            raise VicinalError("\n".join(problems))

    # ------------------------------------------------------------ evaluation

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        from vicinal.data.datasets import resolve_data_dir

        c = self.config
        data_dir = ctx.data_dir or resolve_data_dir(None)
        shape = tuple(ctx.data.test.images.shape[1:])
        temperature = ctx.temperature if c.temperature_scaling else None
        if c.temperature_scaling and temperature is None:
            temperature = 1.0  # no validation split: T = 1, as the calibration evaluator has no ·TS then
        id_scores = dm.ood_scores(ctx.test_logits.numpy(), temperature)
        task = ctx.reporter.task("OOD sets", total=len(self.sources))
        per_set: dict[str, dict[str, np.ndarray]] = {}
        opened = []
        for source in self.sources:
            n = c.n_generated if source.download is None else c.n_samples
            images = source.open(data_dir, shape, n, c.seed, self.paths.get(source.name, ""))
            logits = ctx.predict_batches(images.batches(ctx.batch_size), total=images.n)
            per_set[source.name] = dm.ood_scores(logits.numpy(), temperature)
            opened.append(images)
            task.advance(1, set=source.name)
        task.close()
        out: dict[str, float] = {}
        for sfx, (score, _, _) in self._scores().items():
            for name, scores in per_set.items():
                s = np.concatenate([id_scores[score], scores[score]])
                is_ood = np.r_[np.zeros(len(id_scores[score]), bool), np.ones(len(scores[score]), bool)]
                ranking = dm.Ranking(s, is_ood)
                for measure, (_, _, kind, _) in MEASURES.items():
                    out[f"ood_{measure}{sfx}/{name}"] = float(dm.METRICS[kind](ranking, None, 0.95))
            for measure in MEASURES:
                out[f"ood_{measure}{sfx}"] = statistics.fmean(out[f"ood_{measure}{sfx}/{n}"] for n in per_set)
        self._record(ctx, id_scores, per_set, opened)
        self.source_info = {"sets": {i.name: i.info for i in opened}}
        if c.figures:
            self._draw(ctx, id_scores, per_set, out)
        return out

    def _record(
        self,
        ctx: EvalContext,
        id_scores: dict[str, np.ndarray],
        per_set: dict[str, dict[str, np.ndarray]],
        opened: list,
    ) -> None:
        """Per example, for paired comparisons: the test split and every OOD set as one example space
        (resampled together: the test images shared by every set move in all of them at once)."""
        from vicinal.data.ood_sets import digest

        n_id = len(next(iter(id_scores.values())))
        fingerprint = digest(ctx.test_fingerprint, [(i.name, i.fingerprint) for i in opened])
        total = n_id + sum(i.n for i in opened)
        source = f"{ctx.data.name} test + OOD " + ", ".join(i.name for i in opened)
        space = Examples.all_of(source, fingerprint, total, "the test split, then each OOD set in order")
        groups = np.concatenate(
            [np.zeros(n_id, np.int64)] + [np.full(i.n, k + 1) for k, i in enumerate(opened)]
        )
        # The ranks of each score over the whole space: all the metrics read, exactly.
        columns = {
            f"rank_{score}": dense_ranks(
                np.concatenate([id_scores[score]] + [per_set[i.name][score] for i in opened])
            )
            for score, _, _ in self._scores().values()
        }
        ctx.record_examples(_SET, space, **{_GROUP: groups}, **columns)
        codes = {i.name: k + 1 for k, i in enumerate(opened)}
        for sfx, (score, _, _) in self._scores().items():
            for measure, (_, _, kind, _) in MEASURES.items():
                family = f"ood_{measure}{sfx}"
                level = 0.95 if kind == "fpr_at_tpr" else 0.0
                common = dict(target=_GROUP, level=level)
                ctx.statistic(family, kind, [_SET], f"rank_{score}", groups=list(codes.values()), **common)
                for name, code in codes.items():
                    ctx.statistic(f"{family}/{name}", kind, [_SET], f"rank_{score}", groups=[code], **common)

    def _draw(
        self,
        ctx: EvalContext,
        id_scores: dict[str, np.ndarray],
        per_set: dict[str, dict[str, np.ndarray]],
        out: dict[str, float],
    ) -> None:
        path = ctx.artifact_path("ood")
        if path is not None:
            scores = [score for score, _, _ in self._scores().values()]
            _figure(id_scores, per_set, out, scores, ctx.title, path)

    def protocol(self) -> dict:
        c = self.config
        return {
            "sets": self.source_info.get("sets", c.sets),
            "n_generated": c.n_generated,
            "n_samples": c.n_samples or "all",
            "seed": c.seed,
            "scores": {k or "msp": v[2] for k, v in self._scores().items()},
            "temperature": (
                # the rule, not the fitted value: a measurement differs per seed, and a protocol that does
                # would split one configuration's seeds into rows of one
                "the run's validation-fitted T (EvalContext.temperature, shared with the calibration "
                "evaluator; T = 1 without a validation split)"
                if c.temperature_scaling
                else "not used"
            ),
            "positive class": "in-distribution test images (AUROC, AUPR-In, FPR95); OOD images for AUPR-Out",
            "ties": "one threshold per distinct score: a tied pair counts half in AUROC; average precision "
            "without interpolation",
            "fpr95": "at the first threshold from the top whose TPR is at least 95 % (not the nearest)",
            "aggregate": "mean over the OOD sets",
            "library": "vicinal.store.detection_metrics (checked against scikit-learn, torchmetrics and "
            "torch-uncertainty in tests/test_ood.py)",
        }


# ---------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(id_scores, per_set, out, scores, title, path) -> None:
    """One column per OOD set: the MSP histogram of the test split against the set's (top), the ROC of
    every score (bottom). One figure, laid out by hand and saved without a tight bounding box: drawing is
    the evaluator's largest cost on the digits, and a tight layout or bounding box draws a figure twice
    (measured: the tight box cost 1.9 s against 1.3 s for this figure, load ≈ 9 on 2 cores)."""
    from sklearn.metrics import roc_curve

    from vicinal.core.plots import save_figure

    plt = _pyplot()
    sets = list(per_set)
    fig, axes = plt.subplots(2, len(sets), figsize=(3.3 * len(sets), 6.2), squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.08, hspace=0.35, wspace=0.25)
    suffix = {v[0]: k for k, v in SCORES.items()}
    for j, name in enumerate(sets):
        ax = axes[0, j]
        a, b = np.exp(id_scores["msp"]), np.exp(per_set[name]["msp"])
        edges = np.linspace(min(a.min(), b.min()), 1.0, 31)
        ax.hist(a, bins=edges, density=True, alpha=0.6, color="#4C72B0", label="test (in-dist.)")
        ax.hist(b, bins=edges, density=True, alpha=0.6, color="#C44E52", label=f"{name} (OOD)")
        ax.set_title(f"{name} · AUROC {100 * out[f'ood_auroc/{name}']:.1f}%", fontsize=9)
        ax.set_xlabel("max softmax probability", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
        ax = axes[1, j]
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1)
        inside = np.r_[np.ones(len(id_scores["msp"]), bool), np.zeros(len(per_set[name]["msp"]), bool)]
        for score in scores:
            fpr, tpr, _ = roc_curve(inside, np.concatenate([id_scores[score], per_set[name][score]]))
            auroc = out[f"ood_auroc{suffix[score]}/{name}"]
            ax.plot(fpr, tpr, lw=1.2, label=f"{_DISPLAY[score]} {100 * auroc:.1f}%")
        ax.set_xlabel("FPR (OOD accepted)", fontsize=8)
        ax.legend(fontsize=6.5, loc="lower right", title="score · AUROC", title_fontsize=7)
        for ax in axes[:, j]:
            ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("density", fontsize=8)
    axes[1, 0].set_ylabel("TPR (in-distribution kept)", fontsize=8)
    fig.suptitle(f"{title}: in-distribution vs OOD", fontsize=10)
    save_figure(fig, path, tight=False)
    plt.close(fig)
