"""Accuracy and calibration under the 19 corruptions of Hendrycks & Dietterich, every severity.

Where the corrupted images come from (recorded in each result file):
- a set on disk: ``path``, else ``<data dir>/CIFAR-10-C`` (the released folder name, also where
  ``vicinal corrupt`` writes by default) — released files are checked against their published MD5s;
- else, with ``source = "auto"`` or ``"generate"``, the clean test split corrupted with a fixed seed on the
  run's device (one generator per corruption and severity, so any subset of cells reproduces), once into
  the cache folder. A CUDA generator makes other images than the CPU's from the same seed, so the
  generating device (and GPU model) is part of the set's key, manifest and example identity.

Metrics: ``c_acc`` (mean over the 15 common corruptions × severities, the RobustBench/Hendrycks
convention), ``c_acc_all`` (all 19), ``c_ece`` / ``c_ece_ts`` / ``c_nll`` / ``c_aurc`` (selective
prediction: the mean AURC of the cells, AURC-C), and breakdowns per corruption
(``c_acc/<c>``), per severity (``c_acc/s<k>``, common corruptions) and per cell (``c_acc/<c>/s<k>``).
mCE and relative mCE are this evaluator's declared derivation ``corruption_error``
(``vicinal.board.relative``), computed by the renderers from the cells relative to the suite's baseline rows,
as ratios of errors summed over the same cells, so they cannot rank against ``c_acc``
(``vicinal.board.relative`` says why): CIFAR and Tiny-ImageNet have no AlexNet baseline.

One module, longer than most, because finding, verifying and generating the set, scoring its cells and
declaring the cells' metrics and breakdowns are one protocol: split, each half would need the other's
details.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vicinal.core.errors import VicinalError
from vicinal.core.hparams import SEED_MAX, hp
from vicinal.data.corrupted import (
    RELEASES,
    CorruptedSet,
    GeneratedSet,
    NpySet,
    default_folder,
    find_set,
    write_set,
)
from vicinal.evaluation.calibration_metrics import MAX_BINS, ece, nll
from vicinal.evaluation.evaluator import EvalContext, Evaluator, MetricInfo, register_evaluator, seeded_subset
from vicinal.host.devices import generator_device
from vicinal.store.declarations import Breakdown, FigureSpec, PanelSpec
from vicinal.store.detection_metrics import log_msp
from vicinal.store.outcomes import Examples
from vicinal.store.selective_metrics import aurc, dense_ranks

_HINT = "run the corruption evaluator (a -c suite)"


@register_evaluator("corruption")
class CorruptionEvaluator(Evaluator):
    summary = (
        "accuracy, ECE (before/after temperature scaling) and NLL on corrupted test sets (CIFAR-10-C "
        "layout): per corruption × severity, means over the 15 common and all 19; mCE in the leaderboard"
    )
    group = "corruptions"
    breakdowns = (
        Breakdown("corruption", "corruption", "c_acc", hint=_HINT),
        Breakdown("severity", "severity", "c_acc", column="s{key}", hint=_HINT),
    )
    figures = (
        FigureSpec(
            "heatmap",
            "Accuracy per corruption",
            (PanelSpec("accuracy per corruption", "c_acc", ylabel="accuracy"),),
            caption="Mean over severities and seeds, per method (rows) and corruption (columns).",
            by="corruption",
            alt="heat map of accuracy per corruption and method",
        ),
        FigureSpec(
            "lines",
            "Accuracy versus severity",
            (
                PanelSpec("accuracy versus severity", "c_acc", xlabel="severity", ylabel="accuracy"),
                PanelSpec("ECE versus severity", "c_ece", xlabel="severity", ylabel="ECE"),
            ),
            caption="Mean over the corruptions at each severity (clean test split at 0); the band is ± one "
            "std over seeds.",
            by="severity",
            alt="accuracy versus corruption severity per method",
        ),
    )
    #: mCE and relative mCE against the suite's baseline (vicinal.board.relative).
    derived = ("corruption_error",)

    @dataclass
    class Config:
        corruptions: list[str] = hp(["all"], "corruption names or subsets (common, extra, noise, …, all)")
        severities: list[int] = hp([1, 2, 3, 4, 5], "severities 1–5", ge=1, le=5)
        source: Literal["auto", "disk", "generate"] = hp(
            "auto", "auto: a set on disk if present, else generate on the fly; disk: require one; generate"
        )
        path: str = hp("", "folder of a -C set [default: <data dir>/<released folder>, e.g. CIFAR-10-C]")
        seed: int = hp(0, "seed for generating on the fly", ge=0, le=SEED_MAX)
        table: str = hp("auto", "parameter table: cifar, tinyimagenet, imagenet, or auto (by image size)")
        n_samples: int = hp(0, "images per corruption and severity (a seeded subset); 0 = all", ge=0)
        bins: int = hp(15, "confidence bins for ECE (equal-width)", ge=1, le=MAX_BINS)
        temperature_scaling: bool = hp(True, "also report ECE after the validation-fitted temperature")

    def __init__(self, config=None):
        super().__init__(config)
        c = self.config
        if not c.severities or any(s not in (1, 2, 3, 4, 5) for s in c.severities):
            raise VicinalError(f"evaluators.corruption.severities = {c.severities}: choose from 1–5")
        from vicinal.corruptions import SCALES, resolve_corruptions

        if c.table != "auto" and c.table not in SCALES:  # else a KeyError once the first model is trained
            raise VicinalError(
                f"evaluators.corruption.table = {c.table!r}: choose auto or one of {', '.join(SCALES)}"
            )
        self.corruptions = resolve_corruptions(c.corruptions)
        if not self.corruptions:
            raise VicinalError("evaluators.corruption.corruptions selects no corruption")
        self.severities = sorted(set(c.severities))
        self.source_info: dict = {}

    @property
    def common(self) -> list[str]:
        from vicinal.corruptions import get_corruption

        return [c for c in self.corruptions if get_corruption(c).common]

    def metric_info(self) -> dict[str, MetricInfo]:
        info = {
            "c_acc": MetricInfo(
                "acc-C",
                True,
                percent=True,
                description="mean accuracy over the common corruptions × severities",
            ),
            "c_acc_all": MetricInfo(
                "acc-C all", True, percent=True, description="mean accuracy over all corruptions × severities"
            ),
            "c_ece": MetricInfo(
                "ECE-C", False, percent=True, description="mean ECE over the common corruptions × severities"
            ),
            "c_ece_ts": MetricInfo(
                "ECE-C·TS",
                False,
                percent=True,
                headline=False,
                description="mean ECE over the common corruptions × severities after temperature scaling "
                "(T fitted on the clean validation split)",
            ),
            "c_nll": MetricInfo(
                "NLL-C",
                False,
                headline=False,
                description="mean NLL over the common corruptions × severities",
            ),
            "c_aurc": MetricInfo(
                "AURC-C",
                False,
                percent=True,
                headline=False,
                description="mean over the common corruptions × severities of the area under the "
                "risk–coverage curve (abstaining on the least confident by the MSP; the selective "
                "evaluator's AURC on each corrupted cell)",
            ),
        }
        for family, label, better, clean in (("c_acc", "acc", True, "acc"), ("c_ece", "ECE", False, "ece")):
            part = partial(MetricInfo, higher_is_better=better, percent=True, headline=False, family=family)
            for c in self.corruptions:
                info[f"{family}/{c}"] = part(
                    f"{label} {c}",
                    description=f"{label} under {c}, mean over severities {self.severities}",
                    by="corruption",
                    key=c,
                )
                for s in self.severities:
                    info[f"{family}/{c}/s{s}"] = part(
                        f"{label} {c} s{s}",
                        description=f"{label} under {c} at severity {s}",
                        by="cell",
                        key=f"{c}/{s}",
                    )
            for s in self.severities:
                info[f"{family}/s{s}"] = part(
                    f"{label} s{s}",
                    description=f"{label} at severity {s}, mean over the common corruptions",
                    by="severity",
                    key=str(s),
                    clean=clean,
                )
        return info

    # ------------------------------------------------------------------ data

    def check_inputs(self, ctx: EvalContext) -> None:
        """A set on disk is found and verified (its manifest's or the release's MD5s, every file's size
        and shape) before training starts; one that will be generated needs nothing."""
        self._on_disk(ctx)

    def _on_disk(self, ctx: EvalContext) -> CorruptedSet | None:
        """The corrupted set on disk, verified, if the configuration reads one and it is there."""
        c = self.config
        if c.source == "generate":
            return None
        for folder in self._candidates(ctx):
            found = find_set(folder, RELEASES.get(ctx.data.name), wnids=_wnids(ctx))
            if found is not None:
                self._check_matches(found, ctx)
                return found
        if c.path:
            raise VicinalError(f"evaluators.corruption.path = {c.path}: no labels.npy there")
        return None

    def _candidates(self, ctx: EvalContext) -> list[Path]:
        c = self.config
        candidates = [Path(c.path).expanduser()] if c.path else []
        if not c.path and ctx.data_dir is not None:
            candidates.append(default_folder(ctx.data.name, ctx.data_dir))
        return candidates

    def open_set(self, ctx: EvalContext) -> CorruptedSet:
        c = self.config
        dataset = ctx.data.name
        release = RELEASES.get(dataset)
        candidates = self._candidates(ctx)
        found = self._on_disk(ctx)
        if found is not None:
            return found
        if c.source == "disk":
            looked = ", ".join(map(str, candidates)) or "nowhere (no path and no released set)"
            raise VicinalError(
                f"no corrupted {dataset} set on disk (looked in {looked}). Make one with `vicinal corrupt "
                f"--dataset {dataset} --data-dir DIR`"
                + (f", or download the released one with `vicinal download {dataset}-c`" if release else "")
                + ", or set evaluators.corruption.source=generate to corrupt on the fly"
            )
        table = None if c.table == "auto" else c.table
        if ctx.cache_dir is None:
            return GeneratedSet(ctx.data.test, self.corruptions, self.severities, c.seed, table, ctx.device)
        return self._cached_set(ctx, table)

    def _cached_set(self, ctx: EvalContext, table: str | None) -> CorruptedSet:
        """Generate the set once into the cache (every method and seed of a suite reuses it). The key
        holds the generating device: a CUDA generator draws other numbers than the CPU's from one seed
        (and GPU models may differ), so sets made on different devices hold different images."""
        from vicinal.corruptions.core import ENGINE_VERSION
        from vicinal.store.results import config_hash

        fingerprint = ctx.data.test.fingerprint()
        key = config_hash(
            {
                "test": fingerprint,
                "corruptions": self.corruptions,
                "severities": self.severities,
                "seed": self.config.seed,
                "table": table,
                "engine": ENGINE_VERSION,
                "device": generator_device(ctx.device),
            }
        )
        folder = ctx.cache_dir / "corrupted" / f"{ctx.data.name}-{key[:12]}"
        if not (folder / "manifest.json").is_file() or not _complete(folder, self.corruptions):
            source = {"dataset": ctx.data.name, "path": ctx.data.source, "test_fingerprint": fingerprint}
            write_set(
                ctx.data.test,
                folder,
                self.corruptions,
                self.severities,
                seed=self.config.seed,
                table=table,
                device=ctx.device,
                source=source,
                reporter=ctx.reporter,
            )
        return NpySet(folder)

    def _check_matches(self, found: CorruptedSet, ctx: EvalContext) -> None:
        missing = [x for x in self.corruptions if x not in found.corruptions]
        missing_s = [s for s in self.severities if s not in found.severities]
        where = found.info.get("path")
        if missing or missing_s:
            raise VicinalError(
                f"the corrupted set at {where} lacks "
                + ", ".join(filter(None, [", ".join(missing), ", ".join(f"severity {s}" for s in missing_s)]))
                + "; generate them with `vicinal corrupt` or choose evaluators.corruption.corruptions"
            )
        manifest = found.info.get("manifest")
        if manifest:
            made_from = manifest["settings"]["source"].get("test_fingerprint")
            if made_from and made_from != ctx.data.test.fingerprint():
                raise VicinalError(
                    f"the corrupted set at {where} was generated from other test images than this run's "
                    f"{ctx.data.name} test split; regenerate it with `vicinal corrupt` for this data"
                )

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        c = self.config
        cset = self.open_set(ctx)
        labels_all = cset.labels()
        index = seeded_subset(cset.n, c.n_samples, c.seed) if 0 < c.n_samples < cset.n else None
        labels = (labels_all if index is None else labels_all[index]).numpy()
        t = ctx.temperature if c.temperature_scaling else None
        order = [(name, s) for name in self.corruptions for s in self.severities]
        # In images, advanced per batch: a cell of 10,000 CIFAR images takes a minute on a CPU.
        task = ctx.task("corruptions", total=len(order) * len(labels))

        def stream() -> Iterator[torch.Tensor]:
            for name, s in order:
                for batch in cset.batches(name, s, ctx.batch_size, index):
                    yield batch
                    task.advance(len(batch), cell=f"{name} · severity {s}")

        # One pass over every cell in full batches (a cell's last partial batch is topped up from the
        # next cell), then the logits are cut back into cells.
        logits_all = ctx.predict_batches(
            rebatch(stream(), ctx.batch_size), total=len(order) * len(labels)
        ).numpy()
        # Per example, for paired comparisons: every cell holds the same images of the set, in one order.
        examples = self._examples(ctx, cset, labels_all, index)
        common = set(self.common)
        cells: dict[tuple[str, int], dict[str, float]] = {}
        for i, key in enumerate(order):
            logits = logits_all[i * len(labels) : (i + 1) * len(labels)]
            ctx.record_logits(_cell(*key), examples, torch.from_numpy(logits), torch.from_numpy(labels))
            # The ranks of the MSP in the cells AURC-C averages, for its intervals (confidences stored in
            # 1/65,520 steps would tie the most confident predictions, where a broken cell's errors are).
            score, correct = log_msp(logits), logits.argmax(1) == labels
            if key[0] in common:
                ctx.record_examples(_cell(*key), examples, rank_msp=dense_ranks(score))
            cell = {
                "acc": float(correct.mean()),
                "ece": ece(logits, labels, c.bins),
                "nll": nll(logits, labels),
                "aurc": aurc(score, correct),
            }
            if t is not None:
                cell["ece_ts"] = ece(logits / t, labels, c.bins)
            cells[key] = cell
        task.close()
        self.source_info = {**cset.info, "images_per_cell": len(labels)}
        if isinstance(cset, GeneratedSet):
            from vicinal.corruptions import SCALES, table_for

            name = cset.table or table_for(*ctx.data.test.images.shape[-2:])
            self.source_info["table"] = f"{name} (made for {SCALES[name]} px images)"
        self._declare_statistics(ctx)
        return self._aggregate(cells)

    def _examples(
        self, ctx: EvalContext, cset: CorruptedSet, labels: torch.Tensor, index: torch.Tensor | None
    ) -> Examples:
        """The corrupted set's images as an example space. Its fingerprint is the set's content where a
        manifest records it (file MD5s), else what determines it (the release, or the generator's seed,
        table and test images), plus the labels — not its path, so copies of one set pair."""
        from vicinal.corruptions.core import ENGINE_VERSION

        info = cset.info
        manifest = info.get("manifest") or {}
        if manifest.get("md5"):
            content: object = {"md5": manifest["md5"]}
        elif info.get("kind") == "on the fly":
            content = {
                "device": info.get("device"),
                "seed": info.get("seed"),
                "table": self.config.table,
                "engine": ENGINE_VERSION,
                "test": ctx.test_fingerprint,
            }
        else:
            content = {"kind": info.get("kind"), "n": cset.n}
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps(content, sort_keys=True, default=str).encode())
        h.update(labels.numpy().astype(np.int64).tobytes())
        n = len(labels)
        chosen = torch.arange(n) if index is None else index
        what = (
            "all"
            if index is None
            else f"seeded subset: n_samples {self.config.n_samples}, seed {self.config.seed}"
        )
        return Examples("corrupted test", h.hexdigest(), n, chosen.numpy(), f"{what}; {info.get('kind')}")

    def _declare_statistics(self, ctx: EvalContext) -> None:
        """How each metric is recomputed from the cells: the same means over cells as ``_aggregate``."""
        common, sev = self.common, self.severities
        groups: dict[str, tuple[list[str], list[int]]] = {}
        if common:
            groups[""] = (common, sev)
            groups.update({f"/s{s}": (common, [s]) for s in sev})
        for n in self.corruptions:
            groups[f"/{n}"] = ([n], sev)
            groups.update({f"/{n}/s{s}": ([n], [s]) for s in sev})
        for family, kind, column in (("c_acc", "mean", "correct"), ("c_ece", "ece", "confidence")):
            for suffix, (names, severities) in groups.items():
                cells = [_cell(n, s) for n in names for s in severities]
                ctx.statistic(family + suffix, kind, cells, column, self.config.bins)
        if len(common) < len(self.corruptions):
            cells = [_cell(n, s) for n in self.corruptions for s in sev]
            ctx.statistic("c_acc_all", "mean", cells)
        if common:
            cells = [_cell(n, s) for n in common for s in sev]
            ctx.statistic("c_aurc", "aurc", cells, "rank_msp", target="correct")

    def _aggregate(self, cells: dict[tuple[str, int], dict[str, float]]) -> dict[str, float]:
        def mean(key: str, names: list[str], severities: list[int]) -> float:
            return statistics.fmean(cells[(n, s)][key] for n in names for s in severities)

        out: dict[str, float] = {}
        common, sev = self.common, self.severities
        if common:
            out["c_acc"] = mean("acc", common, sev)
            out["c_ece"] = mean("ece", common, sev)
            out["c_nll"] = mean("nll", common, sev)
            out["c_aurc"] = mean("aurc", common, sev)
            if all("ece_ts" in v for v in cells.values()):
                out["c_ece_ts"] = mean("ece_ts", common, sev)
        if len(common) < len(self.corruptions):
            out["c_acc_all"] = mean("acc", self.corruptions, sev)
        for family, key in (("c_acc", "acc"), ("c_ece", "ece")):
            for n in self.corruptions:
                out[f"{family}/{n}"] = mean(key, [n], sev)
                for s in sev:
                    out[f"{family}/{n}/s{s}"] = cells[(n, s)][key]
            if common:
                for s in sev:
                    out[f"{family}/s{s}"] = mean(key, common, [s])
        return out

    def protocol(self) -> dict:
        c = self.config
        return {
            "corruptions": self.corruptions,
            "common": self.common,
            "severities": self.severities,
            "source": self.source_info or c.source,
            "table": self.source_info.get("table", c.table),
            "seed": c.seed,
            "n_samples": c.n_samples or "all",
            "bins": c.bins,
            "temperature_scaling": "T fitted on the clean validation split"
            if c.temperature_scaling
            else "off",
            "engine": "vicinal.corruptions (batched torch; parameters from hendrycks/robustness "
            "make_*_c.py); uint8 truncation as the reference",
            "aggregates": "c_acc, c_ece, c_nll, c_aurc: mean over the common corruptions × severities; "
            "c_acc_all: over all",
            "c_mce": "derived by the leaderboard: errors summed over the common corruptions × severities, "
            "divided by the suite's erm rows' sum over the same cells (= (1 − c_acc) / (1 − c_acc of erm), "
            "so it ranks as c_acc does; not Hendrycks's mean of per-corruption ratios, which explodes "
            "where the baseline's error is near zero); per-corruption ratios as ce/<c>. CIFAR and "
            "Tiny-ImageNet have no AlexNet baseline",
        }


def _cell(corruption: str, severity: int) -> str:
    """The name of a cell's per-example set."""
    return f"c/{corruption}/s{severity}"


def rebatch(batches: Iterable[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    """The same images, in order, in batches of ``size`` (the last one possibly smaller)."""
    pending: list[torch.Tensor] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += len(batch)
        if count >= size:
            joined = torch.cat(pending)
            full = count - count % size
            yield from joined[:full].split(size)
            pending, count = ([joined[full:]], count - full) if count > full else ([], 0)
    if count:
        yield torch.cat(pending)


def _complete(folder: Path, corruptions: list[str]) -> bool:
    import json

    done = json.loads((folder / "manifest.json").read_text()).get("md5", {})
    return all(c in done for c in corruptions)


def _wnids(ctx: EvalContext) -> list[str] | None:
    """Tiny-ImageNet's class order (its wnids.txt), needed to label the released JPEG folders."""
    wnids = Path(ctx.data.source) / "wnids.txt"
    if ctx.data.name != "tinyimagenet" or not wnids.is_file():
        return None
    return [w for w in wnids.read_text().split() if w]
