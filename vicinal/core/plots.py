"""Figures drawn with matplotlib (Agg backend, no display needed)."""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vicinal.core.io import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, *, tight: bool = True) -> None:
    """Write a figure atomically (PNG; the temporary file keeps the suffix so matplotlib knows the format).
    ``tight=False`` for a figure laid out by hand: a tight bounding box draws the figure twice."""
    bbox = "tight" if tight else None
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches=bbox))


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


def sample_grid(rows: dict[str, np.ndarray], title: str, note: str, path: Path) -> None:
    """Rows of images (N, H, W, C) in [0, 1], one column per pair, each row named on its left."""
    plt = _pyplot()
    n = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(
        len(rows), n, figsize=(1.0 * n + 1.6, 1.0 * len(rows) + 0.6), squeeze=False, layout="constrained"
    )
    for r, (name, images) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                image = images[c]
                ax.imshow(
                    image.squeeze(-1) if image.shape[-1] == 1 else image,
                    cmap="gray",
                    vmin=0,
                    vmax=1,
                    interpolation="nearest",
                )
        axes[r, 0].set_ylabel(mpl_text(name), rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(mpl_text(title), fontsize=10)
    if note:
        fig.text(0.5, -0.01, mpl_text(note), ha="center", va="top", fontsize=8, color="0.3")
    save_figure(fig, path)
    plt.close(fig)


def mpl_text(text: str) -> str:
    """Text shown literally by matplotlib: '$' would start mathtext, a leading '_' hides a legend entry."""
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


# ---------------------------------------------------------------- report figures

#: Fixed colours for the seed methods, so a method looks the same in every figure and every report.
#: Every other method (the registry example, plugins) draws from the rest by a hash of its name.
METHOD_COLOURS = {
    "erm": "#4d4d4d",
    "mixup": "#1f77b4",
    "manifold-mixup": "#2ca02c",
    "varmixup": "#d62728",
    "varmixup-beta": "#ff7f0e",
}
_SPARE_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939", "#843c39")
LINESTYLES = ("-", "--", ":", "-.")


def method_colour(method: str) -> str:
    """The one colour of a method in every figure: fixed for the built-ins, else chosen by a stable hash
    of the name (not Python's salted ``hash``), so it does not depend on which other methods are shown."""
    if method in METHOD_COLOURS:
        return METHOD_COLOURS[method]
    digest = hashlib.sha256(method.encode()).digest()
    return _SPARE_COLOURS[digest[0] % len(_SPARE_COLOURS)]


@dataclass
class Series:
    """One row's line: y (and optional std) over x; ``linestyle`` tells configurations of a method apart."""

    label: str
    method: str
    x: list[float]
    y: list[float]
    yerr: list[float] | None = None
    linestyle: str = "-"


@dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: list[Series]
    xticks: list[tuple[float, str]] = field(default_factory=list)
    percent: bool = False


def line_panels(panels: list[Panel], suptitle: str = "") -> Any:
    """Side-by-side line plots sharing one legend (one entry per method row), colours by method."""
    plt = _pyplot()
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.4 * cols, 3.4 * rows + 0.5), squeeze=False, layout="constrained"
    )
    for ax, panel in zip(axes.flat, panels, strict=False):
        scale = 100.0 if panel.percent else 1.0
        for s in panel.series:
            y = np.asarray(s.y, dtype=float) * scale
            ax.plot(
                s.x,
                y,
                marker="o",
                ms=4,
                lw=1.8,
                ls=s.linestyle,
                color=method_colour(s.method),
                label=mpl_text(s.label),
            )
            if s.yerr is not None:
                err = np.nan_to_num(np.asarray(s.yerr, dtype=float)) * scale
                ax.fill_between(s.x, y - err, y + err, color=method_colour(s.method), alpha=0.15, lw=0)
        if panel.xticks:
            ax.set_xticks([t for t, _ in panel.xticks], [lab for _, lab in panel.xticks])
        ax.set_title(mpl_text(panel.title), fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel + (" (%)" if panel.percent else ""))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    _shared_legend(fig, axes)
    if suptitle:
        fig.suptitle(mpl_text(suptitle), fontsize=11)
    return fig


def _shared_legend(fig: Any, axes: Any) -> None:
    seen: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(
            list(seen.values()),
            list(seen),
            loc="outside lower center",
            ncol=min(len(seen), 4),
            fontsize=8,
            frameon=False,
        )


def heat_map(
    row_labels: list[str],
    col_labels: list[str],
    values: np.ndarray,
    title: str,
    colour_label: str,
    percent: bool = True,
) -> Any:
    """A rows × columns grid of values, each cell annotated; NaN cells stay blank."""
    plt = _pyplot()
    scale = 100.0 if percent else 1.0
    data = np.asarray(values, dtype=float) * scale
    fig, ax = plt.subplots(
        figsize=(max(5.0, 0.62 * len(col_labels) + 2.5), max(2.2, 0.42 * len(row_labels) + 1.6)),
        layout="constrained",
    )
    image = ax.imshow(np.ma.masked_invalid(data), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(col_labels)), [mpl_text(c.replace("_", " ")) for c in col_labels])
    ax.set_yticks(range(len(row_labels)), [mpl_text(r) for r in row_labels])
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right", rotation_mode="anchor")
    finite = data[np.isfinite(data)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if np.isfinite(data[i, j]):
                ax.text(
                    j,
                    i,
                    f"{data[i, j]:.1f}" if percent else f"{data[i, j]:.3g}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if data[i, j] > middle else "white",
                )
    fig.colorbar(image, ax=ax, label=colour_label + (" (%)" if percent else ""), shrink=0.9)
    ax.set_title(mpl_text(title), fontsize=10)
    return fig


def bar_panels(panels: list[Panel], suptitle: str = "") -> Any:
    """One bar per method row and panel (``Series.y`` holds one value), with its std as an error bar."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.6 * len(panels) + 0.6, 3.4), squeeze=False, layout="constrained"
    )
    for ax, panel in zip(axes.flat, panels, strict=True):
        scale = 100.0 if panel.percent else 1.0
        for i, s in enumerate(panel.series):
            err = None if s.yerr is None or not np.isfinite(s.yerr[0]) else [s.yerr[0] * scale]
            ax.bar(
                i,
                s.y[0] * scale,
                yerr=err,
                color=method_colour(s.method),
                hatch="//" if s.linestyle != "-" else None,
                edgecolor="white",
                capsize=3,
                label=mpl_text(s.label),
            )
        ax.set_xticks(range(len(panel.series)), [mpl_text(s.label) for s in panel.series])
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_title(mpl_text(panel.title), fontsize=10)
        ax.set_ylabel(panel.ylabel + (" (%)" if panel.percent else ""))
        ax.grid(axis="y", alpha=0.3)
    if suptitle:
        fig.suptitle(mpl_text(suptitle), fontsize=11)
    return fig


def figure_png(fig: Any) -> bytes:
    """The figure as PNG bytes (for embedding), closed afterwards."""
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
