"""Table and figure of the VarMixup VAE study (studies/varmixup_vae.sh), from its result files only.

For every configuration (method and, for VarMixup, its VAE and variant) it averages over seeds: the VAE's
held-out reconstruction MSE (recomputed from the cached VAE on the suite's validation split, which the VAE
never trained on), clean accuracy, c_acc, relative mCE (vs this suite's ERM rows), ECE, ECE under
corruption, PGD-L∞ robust accuracy at the smallest radius and γ. Prints a markdown table (mean ± sample
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

from vicinal.relative import add_relative_metrics
from vicinal.results import read_result
from vicinal.runner import load_run_data
from vicinal.suite import load_suite
from vicinal.vae import VAESpec, read_cached_vae, reconstruction_mse

ROOT = Path(__file__).resolve().parent.parent
SUITE = "cifar10-quick-c"
# (column, metric key, scale, digits): the study's columns.
COLUMNS = [
    ("acc %", "acc", 100, 1),
    ("c_acc %", "c_acc", 100, 1),
    ("rel. mCE %", "c_rel_mce", 100, 1),
    ("ECE %", "ece", 100, 1),
    ("ECE-C %", "c_ece", 100, 1),
    ("PGD-L∞ 1/255 %", "pgd_linf@1/255", 100, 1),
    ("γ@4/255", "lin_gamma@4/255", 1, 3),
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

    files = sorted((args.out_dir / "results" / SUITE).glob("*/*.json"))
    results = add_relative_metrics([read_result(f) for f in files])
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
    figure(rows, args.docs / "varmixup-vae.png")
    return 0


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    """Clean accuracy, c_acc and relative mCE against the VAE's held-out MSE; references as bands."""
    panels = [
        ("acc", "clean accuracy %", 100),
        ("c_acc", "accuracy under corruption %", 100),
        ("c_rel_mce", "relative mCE % (ERM = 100)", 100),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    markers = {
        "decoded+clean, sample": "o",
        "decoded+clean, means": "s",
        "half, sample": "^",
        "decoded, sample": "v",
    }
    for ax, (key, label, scale) in zip(axes, panels, strict=True):
        for ref, color in (("erm", "0.3"), ("mixup", "tab:green")):
            for row in rows:
                if row["method"] == ref and row[key] == row[key]:
                    m, s = row[key] * scale, (row[key + "_std"] if row["n"] > 1 else 0) * scale
                    ax.axhline(m, color=color, lw=1, label=ref)
                    ax.axhspan(m - s, m + s, color=color, alpha=0.15, lw=0)
        for row in rows:
            if row["method"] != "varmixup" or row[key] != row[key]:
                continue
            gauss = "gaussian" in row["vae"]
            color = ("tab:red" if "resnet" in row["vae"] else "tab:blue") if gauss else "tab:orange"
            err = row[key + "_std"] * scale if row["n"] > 1 else 0
            ax.errorbar(
                row["vae_mse_val"],
                row[key] * scale,
                yerr=err,
                fmt=markers.get(row["variant"], "x"),
                color=color,
                ms=5,
                capsize=2,
                lw=1,
            )
        ax.set_xscale("log")
        ax.set_xlabel("VAE reconstruction MSE (validation split)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, lw=0.5)
    handles = [
        plt.Line2D([], [], color="0.3", label="ERM (± std)"),
        plt.Line2D([], [], color="tab:green", label="mixup (± std)"),
        plt.Line2D([], [], color="tab:orange", marker="o", ls="", label="VarMixup, Bernoulli VAE"),
        plt.Line2D([], [], color="tab:blue", marker="o", ls="", label="VarMixup, Gaussian conv VAE"),
        plt.Line2D([], [], color="tab:red", marker="o", ls="", label="VarMixup, Gaussian resnet VAE"),
        plt.Line2D([], [], color="k", marker="^", ls="", label="train_on = half (equal compute)"),
        plt.Line2D([], [], color="k", marker="v", ls="", label="train_on = decoded"),
        plt.Line2D([], [], color="k", marker="s", ls="", label="mix = means"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("VarMixup on the CIFAR-10 subset (small CNN, 10 epochs): mean ± std over seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
