"""Figures drawn with matplotlib (Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vicinal.io import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Write a figure atomically (PNG; the temporary file keeps the suffix so matplotlib knows the format)."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"))


def reliability_diagram(
    panels: list[tuple[str, list[tuple[float, ...]], dict[str, float]]], title: str, path: Path
) -> None:
    """One panel per (label, bins, metrics): accuracy per confidence bin against the diagonal, the gap
    shaded, and the share of predictions per bin underneath. Drawn here rather than with
    netcal.presentation, whose import breaks with some matplotlib versions."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        2,
        len(panels),
        figsize=(4.2 * len(panels), 5.2),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1]},
        sharex=True,
    )
    for col, (label, bins, metrics) in enumerate(panels):
        centre = np.array([b[0] for b in bins])
        acc = np.array([b[1] for b in bins])
        conf = np.array([b[2] for b in bins])
        share = np.array([b[3] for b in bins])
        width = 1.0 / len(bins)
        ax = axes[0, col]
        ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1, label="perfect calibration")
        ok = ~np.isnan(acc)
        ax.bar(centre[ok], acc[ok], width=width, color="#4C72B0", edgecolor="white", label="accuracy")
        gap_low, gap = np.minimum(acc, conf)[ok], np.abs(conf - acc)[ok]
        ax.bar(
            centre[ok],
            gap,
            bottom=gap_low,
            width=width,
            fill=False,
            hatch="///",
            edgecolor="#C44E52",
            linewidth=0.8,
            label="gap to mean confidence",
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        text = "\n".join(f"{k} {100 * v:.2f}%" if k != "T" else f"T {v:.3f}" for k, v in metrics.items())
        ax.text(
            0.03,
            0.97,
            text,
            va="top",
            ha="left",
            fontsize=9,
            transform=ax.transAxes,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"},
        )
        ax.set_title(label, fontsize=10)
        axes[1, col].bar(centre, share, width=width, color="0.4")
        axes[1, col].set_xlabel("confidence")
        axes[1, col].set_ylabel("share")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.04)
    )
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)
    plt.close(fig)
