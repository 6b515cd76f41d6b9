"""Figures of the comparison chapters: the paper's accuracy against size (Tables 1-3, chapter 9)
and every seed of every ablation variant beside the constants (Tables 4-6, chapter 8).

Both draw one table per figure at the book's column width (about 770 px, figures 7 inches
wide), and place text labels so that they do not overlap (:func:`place_labels`).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from handssca.report.collect import HANDSSCA_ROW, TableResult
from handssca.report.paper import COLUMN_LABELS, VARIANT_LABELS, paper_table
from handssca.report.spread import column_unit
from handssca.report.tables import CONSTANT_LABELS, paper_cells


def _mean(values) -> Optional[float]:
    """One value, or the mean of per-seed values; None when there is none."""
    if values is None:
        return None
    vals = values if isinstance(values, (list, tuple)) else [values]
    return float(np.mean(vals)) if len(vals) else None


def place_labels(ax, points, texts, fontsize: float = 7.0, pad: float = 2.0) -> list:
    """Label each point with its text, moving a label up or down (in steps of its own
    height) until it overlaps no label placed before it; a thin line joins a moved label to
    its point.

    Args:
        ax: the matplotlib axis. points: [(x, y)] in data coordinates. texts: one per point.
        fontsize: the labels' size in points. pad: the gap between two labels, in pixels.

    Returns:
        the matplotlib Text objects, in the order of ``points``.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_points = 72.0 / fig.dpi  # pixels -> points, the unit of the offsets
    placed, labels = [], [None] * len(points)
    # labels from the bottom of the plot up, so that a label moves away from its neighbours
    for i in sorted(range(len(points)), key=lambda i: points[i][1]):
        label = ax.annotate(texts[i], points[i], xytext=(5, 3), textcoords="offset points",
                            fontsize=fontsize, va="bottom")
        box = label.get_window_extent(renderer)
        step, k, dy = box.height + pad, 0, 0.0
        while any(box.overlaps(b) for b in placed) and k < 40:
            k += 1
            dy = step * ((k + 1) // 2) * (1 if k % 2 else -1)  # up, down, further up, ...
            label.set_position((5, 3 + dy * to_points))
            box = label.get_window_extent(renderer)
        if k:  # moved: draw it again with a leader line to its point
            label.remove()
            label = ax.annotate(texts[i], points[i], xytext=(5, 3 + dy * to_points),
                                textcoords="offset points", fontsize=fontsize, va="bottom",
                                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"})
        placed.append(box)
        labels[i] = label
    return labels


def plot_accuracy_vs_size(table: int, result: TableResult, paper_params: float):
    """One of Tables 1-3 as a picture: each method at its #Params (log scale) and PA-MPJPE,
    the paper's HandSSCA in red, our count of the paper's configuration as a dotted line, and
    ours (a black star, with the constants of the same file as lines) only when it was
    measured on the real dataset: a number from synthetic data does not belong on this axis.

    Args:
        table: 1, 2 or 3. result: the table's result file (:func:`~handssca.report.
            load_table_results`). paper_params: our count of the paper's configuration, in
            millions (:func:`~handssca.report.parameter_counts`).

    Returns:
        the matplotlib Figure (7 x 4.2 inches).
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    if table not in (1, 2, 3):
        raise ValueError(f"plot_accuracy_vs_size: expected Table 1, 2 or 3, got {table!r}")
    paper = paper_table(table)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    points, names = [], []
    for row, cells in paper.items():
        p = cells.get("params")
        if p is None or p.value is None or cells.get("pa_mpjpe") is None:
            continue  # methods without a #Params (or a PA-MPJPE) have no place here
        own = row == HANDSSCA_ROW
        ax.scatter(p.value, cells["pa_mpjpe"].value, s=40 if own else 25,
                   color="C3" if own else "C0", zorder=3)
        points.append((p.value, cells["pa_mpjpe"].value))
        names.append("HandSSCA (paper)" if own else row)
    ax.axvline(paper_params, ls=":", color="C3", lw=1,
               label=f"our count of the paper's configuration: {paper_params:.1f}M")
    status = _draw_ours(ax, result, paper_params)
    ax.set_xscale("log")
    xs = [x for x, _ in points] + [paper_params]
    ax.set_xlim(min(xs) / 1.5, max(xs) * 2.5)  # room for the labels right of the points
    ys = [y for _, y in points]
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.8)
    lo, hi = ax.get_xlim()
    ax.set_xticks([x for x in (10, 20, 30, 50, 100, 200, 500, 1000) if lo <= x <= hi])
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("#Params (M, log scale)")
    ax.set_ylabel("PA-MPJPE (mm), lower is better")
    name = next(iter(next(iter(paper.values())).values())).caption
    ax.set_title(f"Table {table}: {name}, the paper's numbers ({status})", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    place_labels(ax, points, names)
    return fig


def _draw_ours(ax, result: TableResult, paper_params: float) -> str:
    """Our PA-MPJPE and the constants' on ``ax`` when measured on real data; returns the
    status for the title."""
    mine = _mean(paper_cells(result.ours.get(HANDSSCA_ROW, {})).get("pa_mpjpe"))
    if result.data != "real" or mine is None:
        return ("ours: SYNTHETIC data, not drawn" if result.data == "synthetic"
                else "ours: not run")
    ax.scatter(paper_params, mine, marker="*", s=120, color="k", zorder=4,
               label=f"ours, real data ({result.profile})")
    for (key, label), style in zip(CONSTANT_LABELS.items(), ("--", "-.")):
        value = _mean(paper_cells(result.constants.get(key) or {}).get("pa_mpjpe"))
        if value is not None:
            ax.axhline(value, ls=style, color="k", lw=1, label=f"{label}, ours (real data)")
    return "ours: real data"


def plot_seed_spread(metrics: Mapping[str, Mapping[str, object]], columns: Sequence[str],
                     constants: Mapping[str, Optional[Mapping[str, object]]], title: str,
                     ncols: Optional[int] = None):
    """Every seed of every variant, per metric column: a dot per trained network, a black bar
    at the mean over seeds (with one standard deviation when there are two or more), and the
    two constants as horizontal lines (dashed: mean pose, dotted: mean articulation).

    Args:
        metrics: {variant: {metric key: [value per seed]}} (package keys and units; the
            aligned F-scores fill F@5/F@15). columns: the paper's metric columns to draw.
        constants: {"mean_pose": cells or None, "mean_articulation": cells or None}.
        title: the figure's title (name the data: SYNTHETIC or real).
        ncols: panels per row (default: 2 for two or four columns, else 3; the figure is 7
            inches wide whatever the count).

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if not columns:
        raise ValueError("plot_seed_spread: columns must name at least one metric column")
    variants = list(metrics)
    ncols = ncols or (2 if len(columns) in (2, 4) else 3)
    nrows = -(-len(columns) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7, 2.9 * nrows), squeeze=False)
    for ax, c in zip(axes.ravel(), columns):
        unit = column_unit(c)
        scale = 100.0 if unit == "%" else 1.0
        for i, v in enumerate(variants):
            vals = np.asarray(paper_cells(metrics[v]).get(c, []), float).ravel() * scale
            if not len(vals):
                continue
            jitter = np.linspace(-0.12, 0.12, len(vals)) if len(vals) > 1 else np.zeros(1)
            ax.scatter(i + jitter, vals, s=18, color=f"C{i}", alpha=0.8, zorder=3)
            err = vals.std(ddof=1) if len(vals) > 1 else None
            ax.errorbar(i, vals.mean(), yerr=err, fmt="_", color="black", ms=18, mew=2,
                        capsize=4, zorder=4)
        for (key, label), style in zip(CONSTANT_LABELS.items(), ("--", ":")):
            value = _mean(paper_cells(constants.get(key) or {}).get(c))
            if value is not None:
                ax.axhline(value * scale, ls=style, color="gray", lw=1.2, label=label)
        ax.set_xticks(range(len(variants)))
        ax.set_xticklabels([VARIANT_LABELS.get(v, v).replace("Baseline+", "+")
                            .replace("Baseline (FPN only)", "FPN only") for v in variants],
                           rotation=30, ha="right", fontsize=7)
        ax.set_xlim(-0.6, len(variants) - 0.4)
        better = "higher" if unit == "%" else "lower"
        ax.set_title(f"{COLUMN_LABELS.get(c, c)}\n({better} is better)", fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.ravel()[len(columns):]:
        ax.set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=2, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06 if handles else 0, 1, 1))
    return fig


__all__ = ["plot_accuracy_vs_size", "plot_seed_spread", "place_labels"]
