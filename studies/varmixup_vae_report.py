"""Table and figure of the VarMixup VAE study (studies/varmixup_vae.sh), from its result files only.

For every configuration (method and, for VarMixup, its VAE and variant) it averages over seeds: the VAE's
held-out reconstruction MSE (recomputed from the cached VAE on the suite's validation split, which the VAE
never trained on), clean accuracy, c_acc, relative mCE (vs this suite's ERM rows), ECE, ECE under
corruption, PGD-L∞ robust accuracy and γ (see COLUMNS). Prints a markdown table (mean ± sample
std over seeds, n = seeds) and writes ``docs/varmixup-vae.csv`` and ``docs/varmixup-vae.png``.

    python studies/varmixup_vae_report.py --data-dir /work/shared/data --out-dir /work/vae-study
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from vicinal.methods.vae import VAESpec, read_cached_vae, reconstruction_mse

from vicinal.board.relative import add_relative_metrics
from vicinal.execution.plan import load_run_data
from vicinal.execution.suite import load_suite
from vicinal.store.results import SCHEMA_VERSION, Result

ROOT = Path(__file__).resolve().parent.parent
SUITE = "cifar10-quick-c"
# (column, metric key, scale, digits): the study's columns. Robust accuracy counts an image misclassified
# before the attack as broken, so it is bounded by the clean accuracy on the same 200 images ("acc@adv"),
# which is shown beside it; relative mCE divides by the clean-to-corrupted drop, so a classifier with low
# clean accuracy gets a low value by losing less, which is why the absolute mCE is shown too.
COLUMNS = [
    ("acc %", "acc", 100, 1),
    ("NLL", "nll", 1, 3),
    ("ECE %", "ece", 100, 1),
    ("ECE-TS %", "ece_ts", 100, 1),
    ("c_acc %", "c_acc", 100, 1),
    ("mCE %", "c_mce", 100, 1),
    ("rel. mCE %", "c_rel_mce", 100, 1),
    ("ECE-C %", "c_ece", 100, 1),
    ("acc@adv %", "adv_subset_acc", 100, 1),
    ("PGD 1/255 %", "pgd_linf@1/255", 100, 1),
    ("PGD 2/255 %", "pgd_linf@2/255", 100, 1),
    ("γ@4/255", "lin_gamma@4/255", 1, 2),
]


def vae_label(hp: dict[str, Any]) -> str:
    arch, lik = hp["vae_arch"], hp["vae_likelihood"]
    return f"{arch}, {lik}, z={hp['latent_dim']}, {hp['vae_epochs']} ep, β={hp['beta']:g}"


def variant_label(hp: dict[str, Any]) -> str:
    return f"{hp['train_on']}, {hp['mix']}"


def group_key(result: dict[str, Any]) -> tuple[str, str, str]:
    hp = result["method_info"]["hyperparameters"]
    if result["method"] != "varmixup":
        return (result["method"], "", "")
    return ("varmixup", vae_label(hp), variant_label(hp))


def vae_mse(result: dict[str, Any], cache_dir: Path, val_images: torch.Tensor, memo: dict) -> float | None:
    """Validation-split reconstruction MSE of the run's VAE, read safely from the study cache."""
    key = result["method_info"].get("prepared", {}).get("vae", {}).get("key")
    if key is None:
        return None
    if key not in memo:
        meta = json.loads((cache_dir / "vae" / f"{key}.json").read_text())["spec"]
        fields = {k: v for k, v in meta.items() if k not in ("architecture", "cache_format")}
        spec = VAESpec(**{**fields, "image_shape": tuple(fields["image_shape"])})
        vae, _ = read_cached_vae(spec, cache_dir, torch.device("cpu"))
        memo[key] = reconstruction_mse(vae, val_images, torch.device("cpu"))
    return memo[key]


def load_results(folder: Path) -> list[dict[str, Any]]:
    """The study's result files as JSON objects, with the relative corruption metrics (mCE, relative mCE)
    derived against the suite's ERM rows by vicinal's own code.

    The study ran before this branch took main's result schema 2, which adds code fingerprints
    (``training_id``) that decide whether a run can be *reused*. Those files are read as written, their
    ``training_id`` taken from their ``run_id`` only so that they load for this read-only table; nothing is
    written back, and ``vicinal run`` still treats them as stale (it reruns rather than reuses them)."""
    results = []
    for path in sorted(folder.glob("*/*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("schema") == 1:
            doc = {**doc, "schema": SCHEMA_VERSION, "training_id": doc["run_id"]}
        results.append(Result.from_json(doc, path))
    return [r.to_json() for r in add_relative_metrics(results)]


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def fmt(values: list[float], scale: float, digits: int) -> str:
    if not values:
        return "—"
    m, s = mean_std([v * scale for v in values])
    return f"{m:.{digits}f}" if len(values) == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out-dir", type=Path, required=True, help="the study folder (results/, cache/)")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = ap.parse_args(argv)

    results = load_results(args.out_dir / "results" / SUITE)
    rd = load_run_data(load_suite(str(ROOT / "studies" / f"{SUITE}.toml")), args.data_dir, download=False)
    assert rd.splits.val is not None
    memo: dict[str, float] = {}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        r["metrics"]["vae_mse_val"] = vae_mse(r, args.out_dir / "cache", rd.splits.val.images, memo)
        groups[group_key(r)].append(r)

    def values(runs: list[dict[str, Any]], key: str) -> list[float]:
        return [float(r["metrics"][key]) for r in runs if r["metrics"].get(key) is not None]

    order = sorted(groups, key=lambda k: (k[0] != "erm", k[0] != "mixup", k[1], k[2]))
    header = ["method", "VAE (arch, likelihood, latent, epochs, β)", "train_on, mix", "seeds", "VAE val MSE"]
    header += [c[0] for c in COLUMNS] + ["train s/run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows = []
    for k in order:
        runs = groups[k]
        cells = [
            k[0],
            k[1] or "—",
            k[2] or "—",
            ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"])),
        ]
        cells.append(fmt(values(runs, "vae_mse_val"), 1, 4))
        cells += [fmt(values(runs, key), scale, d) for _, key, scale, d in COLUMNS]
        cells.append(f"{statistics.fmean(r['timing']['train_s'] for r in runs):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
        row = {"method": k[0], "vae": k[1], "variant": k[2], "n": len(runs)}
        for _, key, _, _ in [("", "vae_mse_val", 1, 4), *COLUMNS]:
            vs = values(runs, key)
            row[key], row[key + "_std"] = mean_std(vs) if vs else (float("nan"), float("nan"))
        rows.append(row)
    print("\n".join(lines))

    args.docs.mkdir(exist_ok=True)
    with open(args.docs / "varmixup-vae.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figure(rows, groups, order, args.docs / "varmixup-vae.png")
    return 0


def figure(rows: list[dict[str, Any]], groups: dict, order: list, path: Path) -> None:
    """One row per configuration, one panel per metric: every seed as a dot, the mean as a bar.

    With two seeds a standard deviation says little, so the figure shows the seeds themselves; ERM's and
    mixup's seed range is shaded across each panel so a VarMixup row can be read against both."""
    panels = [
        ("acc", "clean accuracy %", 100),
        ("c_acc", "accuracy under corruption %", 100),
        ("c_ece", "ECE under corruption %", 100),
        ("pgd_linf@2/255", "PGD-L∞ 2/255 robust acc. %", 100),
        ("lin_gamma@4/255", "local linearity γ at 4/255", 1),
    ]
    labels = []
    for k in order:
        if k[0] != "varmixup":
            labels.append(k[0])
        else:
            labels.append(f"VarMixup: {k[1]}\n{k[2]}")
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 0.55 * len(order) + 1.6), sharey=True)
    ys = list(range(len(order)))[::-1]
    for ax, (key, label, scale) in zip(axes, panels, strict=True):
        for k, y in zip(order, ys, strict=True):
            vs = [float(r["metrics"][key]) * scale for r in groups[k] if r["metrics"].get(key) is not None]
            if not vs:
                continue
            color = {"erm": "0.3", "mixup": "tab:green"}.get(k[0], "tab:blue")
            if k[0] == "varmixup" and "bernoulli" in k[1]:
                color = "tab:orange"
            if k[0] in ("erm", "mixup"):
                ax.axvspan(min(vs), max(vs), color=color, alpha=0.12, lw=0)
            ax.plot(vs, [y] * len(vs), "o", color=color, ms=5, alpha=0.8)
            ax.plot([statistics.fmean(vs)] * 2, [y - 0.3, y + 0.3], color=color, lw=2)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3, lw=0.5)
    axes[0].set_yticks(ys, labels, fontsize=7)
    n = sorted({len(groups[k]) for k in order})
    fig.suptitle(
        "VarMixup on the CIFAR-10 subset (small CNN, 10 epochs): dots = seeds, bar = mean "
        f"(seeds per row: {', '.join(map(str, n))}); shaded: ERM (grey) and mixup (green) seed range",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
