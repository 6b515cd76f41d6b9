"""Figures and tables of the model chapters (1, 2 and 4): the scan orders, the channel branch
on an image's features, the parameter table, and the hand image these chapters trace.

- :func:`chapter_hand_data`: the hand crops the model chapters trace, FreiHAND's evaluation
  split from the user's data root when it holds FreiHAND, else a small synthetic FreiHAND-style
  folder (shared by the chapters, generated once).
- :func:`plot_scan_orders`: the visiting step of every pixel in the four scan orders of
  :data:`handssca.ssm.SCAN_ORDERS` (Section 3.3, "Space select").
- :func:`plot_channel_select`: what the channel branch ("Channel select") reads, selects and
  writes on the C x H plane of one image column.
- :func:`parameter_view`: the rows of :func:`handssca.models.parameter_table` as a table that
  shows itself as HTML in a notebook.

matplotlib is imported inside the drawing functions (deferred: importing this module for the
table or the sample must not load a plotting backend).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from handssca.report.tables import Table

#: the folder (under ``data/synth``) of the synthetic hand images the model chapters trace
CHAPTER_SYNTH_DIR = "model-chapters"
#: FreiHAND-style training and evaluation samples generated there: the chapters read the
#: evaluation split (chapter 4 runs a batch of two through the network and its loss)
CHAPTER_SYNTH_N = 2


def chapter_hand_data(input_size: int, seed: int = 0, data_root: str = ""):
    """FreiHAND's evaluation split for the model chapters, cropped to ``input_size``.

    Args:
        input_size: S, the crop side (the network's input; any size the loader takes).
        seed: seed of the synthetic data when it is generated.
        data_root: a folder holding FreiHAND_pub_v2/ (see ``data/README.md``); empty: a
            synthetic FreiHAND-style folder ``data/synth/model-chapters/freihand`` of
            :data:`CHAPTER_SYNTH_N` evaluation samples, generated on first use (a few seconds) and reused.

    Returns:
        (dataset, kind): a :class:`handssca.data.FreiHAND` whose items are the loader's sample
        dictionaries (``image`` (3, S, S), ImageNet normalised; ``pose`` (48), ``shape`` (10),
        ``joints2d`` (21, 2) in crop pixels / S, ...), and "real" or "synthetic".
    """
    from handssca.data import FreiHAND, dataset_source
    from handssca.utils import repo_root

    synth_dir = repo_root() / "data" / "synth" / CHAPTER_SYNTH_DIR
    # no progress bar: a few seconds, and the bar would print into the chapter
    root, kind = dataset_source("freihand", data_root, n=CHAPTER_SYNTH_N, seed=seed,
                                synth_dir=synth_dir, n_eval=CHAPTER_SYNTH_N,
                                show_progress=False)
    return FreiHAND(root, split="test", input_size=input_size), kind


def plot_scan_orders(h: int, w: int, orders: Sequence[str]):
    """The visiting step of each pixel of an h x w plane in each scan order.

    Args:
        h, w: the plane's size (small: every step number is written in its pixel).
        orders: the orders' names (:data:`handssca.ssm.SCAN_ORDERS`), in the order
            :func:`handssca.ssm.cross_scan` stacks them.

    Returns:
        a matplotlib figure, one panel per order: the step at which the order visits each
        pixel (colour and number) and the path from the first pixel (dot) to the last.
    """
    import matplotlib.pyplot as plt
    import torch

    from handssca.ssm import cross_scan

    index = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)
    seqs = cross_scan(index)[0, :, 0].long().numpy()  # (4, L): the pixel visited at each step
    fig, axes = plt.subplots(2, 2, figsize=(7.5, 4.6))
    for k, ax in enumerate(axes.flat):
        step_of = np.empty(h * w, dtype=int)
        step_of[seqs[k]] = np.arange(h * w)
        ax.imshow(step_of.reshape(h, w), cmap="viridis", vmin=0, vmax=h * w - 1)
        rows, cols = np.divmod(seqs[k], w)
        ax.plot(cols, rows, "-", color="w", lw=0.8, alpha=0.5)
        ax.plot(cols[0], rows[0], "o", color="w", ms=9, mfc="none", mew=1.5)
        for r in range(h):
            for c in range(w):
                ax.text(c, r, str(step_of[r * w + c]), ha="center", va="center",
                        color="w" if step_of[r * w + c] < 0.6 * h * w else "k", fontsize=8)
        ax.set_title(f"k = {k}: {orders[k]}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def top_channels(delta_plane: np.ndarray, k: int) -> np.ndarray:
    """The k channels with the largest mean step Delta over the rows.

    Args:
        delta_plane: (C, H), the step Delta of one SSM channel over the C x H plane.
        k: how many.

    Returns:
        (k,) channel indices, the largest mean Delta first.
    """
    if delta_plane.ndim != 2 or not 0 < k <= delta_plane.shape[0]:
        raise ValueError(f"expected a (C, H) plane and 0 < k <= C, got shape "
                         f"{delta_plane.shape} and k = {k}")
    return np.argsort(-delta_plane.mean(1), kind="stable")[:k]


def plot_channel_select(image: np.ndarray, x_plane: np.ndarray, delta_plane: np.ndarray,
                        y_plane: np.ndarray, column: int, n_top: int = 8):
    """The channel branch on one image column: the step Delta of each channel (the selection),
    the branch's input plane and its output.

    Args:
        image: (S, S, 3) uint8, the input crop.
        x_plane: (C, H), the branch's input x at image column ``column`` (C = d_inner).
        delta_plane: (C, H), Delta = softplus(...) of SSM channel ``column`` at each token of
            the plane (scan order 0, row-major over C x H).
        y_plane: (C, H), the branch's output at the same column.
        column: the feature-map column w shown (0 <= w < W).
        n_top: how many channels to mark as the most selected (largest mean Delta).

    Returns:
        a matplotlib figure: the crop with the column's stripe; the mean Delta of each channel
        over the rows, the ``n_top`` largest marked; then the input and the output planes as
        rows x channels images (colours clipped to the 1st-99th percentiles), the marked
        channels ticked in red.
    """
    import matplotlib.pyplot as plt

    c, h = x_plane.shape
    s = image.shape[0]
    top = np.sort(top_channels(delta_plane, n_top))
    fig = plt.figure(figsize=(9.5, 4.8))
    grid = fig.add_gridspec(3, 2, width_ratios=(1, 3.2), wspace=0.12, hspace=0.6)
    ax_img = fig.add_subplot(grid[:, 0])
    ax_img.imshow(image)
    ax_img.axvspan(column * s / h, (column + 1) * s / h, color="c", alpha=0.35)
    ax_img.set_title(f"crop, column w = {column}", fontsize=9)
    ax_img.set_axis_off()
    ax = fig.add_subplot(grid[0, 1])
    mean_delta = delta_plane.mean(1)
    ax.plot(np.arange(c), mean_delta, lw=0.7, color="0.3")
    ax.plot(top, mean_delta[top], "o", color="r", ms=4,
            label=f"the {n_top} most selected channels")
    ax.set_xlim(-0.5, c - 0.5)
    ax.set_ylabel(r"mean $\Delta$", fontsize=8)
    ax.set_title(r"step $\Delta$ of each channel's tokens (large: taken in)", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    ax.tick_params(labelsize=7)
    # an invisible colour bar, so that this panel's x axis lines up with the planes'
    fig.colorbar(plt.cm.ScalarMappable(), ax=ax, pad=0.01, fraction=0.03).ax.set_visible(False)
    planes = ((x_plane, "input x of the branch"), (y_plane, "output of the branch"))
    for i, (plane, title) in enumerate(planes):
        ax = fig.add_subplot(grid[i + 1, 1])
        lo, hi = np.percentile(plane, [1, 99])
        im = ax.imshow(plane.T, aspect="auto", cmap="magma", vmin=lo, vmax=hi,
                       interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("row h", fontsize=8)
        ax.set_xticks(top)
        ax.tick_params(axis="x", colors="r", length=5, labelbottom=False)
        ax.tick_params(axis="y", labelsize=7)
        fig.colorbar(im, ax=ax, pad=0.01, fraction=0.03).ax.tick_params(labelsize=7)
    ax.set_xlabel(f"channel c (0 .. {c - 1}); red ticks: the {n_top} most selected",
                  fontsize=8)
    return fig


def parameter_view(rows: Sequence[dict], caption: str = "") -> Table:
    """The rows of :func:`handssca.models.parameter_table` as a :class:`Table` (HTML in a
    notebook; ``to_markdown()`` for a page): part (branches indented), parameters, share of the
    total, and the paper's figure where it gives one."""
    total = rows[-1]["parameters"]
    body = [["\u2003" * r["level"] + r["part"], f"{r['parameters']:,}",
             f"{100 * r['parameters'] / total:.1f}%", r["paper"] or ""] for r in rows]
    return Table(["part", "parameters", "share", "paper"], body, caption)
