"""Figures of the data chapter: samples with their 2D skeleton and mesh, occlusion histograms,
how much the hands vary (``handssca.data.stats``).

Everything here reads sample dictionaries of :mod:`handssca.data` (the crop, ``joints2d`` in
crop pixels / S, ``vertices`` root-relative in the sample's camera frame, ``K`` of the crop) and
draws with matplotlib; meshes are drawn by :func:`handssca.render.overlay_mesh` (pyrender, imported
on first use).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from handssca.data.stats import occlusion_values
from handssca.hand.joints import FREIHAND_PARENTS, MANO_JOINT_NAMES
from handssca.report.tables import Table

#: one colour per finger (thumb, index, middle, ring, pinky), F order joints 1-4, 5-8, ...
FINGER_COLORS = ("#e6194b", "#f58231", "#3cb44b", "#4363d8", "#911eb4")


def joint_color(j: int) -> str:
    """The colour of F-order joint j (the wrist is black)."""
    return "black" if j == 0 else FINGER_COLORS[(j - 1) // 4]


def draw_skeleton(ax, uv, size: float = 1.0, lw: float = 1.5, ms: float = 3.0) -> None:
    """Draw 21 F-order joints and their bones on a matplotlib axis.

    Args:
        ax: the axis (image coordinates). uv: (21, 2) points, in pixels of the shown image.
        size: scale applied to ``uv`` first (e.g. S for ``joints2d``).
    """
    uv = np.asarray(uv, dtype=np.float64) * size
    for j, p in enumerate(FREIHAND_PARENTS):
        if p >= 0:
            ax.plot(uv[[p, j], 0], uv[[p, j], 1], color=joint_color(j), lw=lw)
    ax.scatter(uv[:, 0], uv[:, 1], c=[joint_color(j) for j in range(21)], s=ms ** 2, zorder=3)


def camera_vertices(sample: dict, transform) -> np.ndarray:
    """The sample's vertices at their absolute place in the sample's camera frame:
    ``vertices + R_z M root`` (M the mirror of a left hand, R_z the augmentation's rotation),
    the points ``sample['K']`` projects into the crop."""
    M = np.diag([-1.0, 1.0, 1.0]) if bool(sample["is_left"]) else np.eye(3)
    root = np.asarray(transform.rotation) @ M @ sample["root"].double().numpy()
    return sample["vertices"].double().numpy() + root


def crop_image(sample: dict) -> np.ndarray:
    """The sample's crop as (S, S, 3) uint8 RGB (ImageNet normalisation undone)."""
    from handssca.data.images import denormalise_image
    return (denormalise_image(sample["image"]) * 255 + 0.5).astype(np.uint8)


def plot_samples(dataset, indices: Sequence[int], faces, augment: bool = False, seed: int = 0,
                 title: str | None = None, mesh: bool = True):
    """A two-row figure: each sample's crop with its 2D joints (F-order skeleton), and its mesh
    drawn over the crop through the crop's camera.

    Args:
        dataset: a ``FreiHAND``, ``HO3D`` or ``DexYCB``. indices: the samples to show.
        faces: (1538, 3) the hand mesh's triangles (``HandLayer(...).faces``).
        augment: draw the training augmentation for each sample (seeded by ``seed + index``).
        title: the figure's title. mesh: False leaves out the second row (no pyrender).
    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    rows = 2 if mesh else 1
    n = len(indices)
    fig, axes = plt.subplots(rows, n, figsize=(2.4 * n, 2.5 * rows), squeeze=False)
    for col, i in enumerate(indices):
        sample, tr = dataset.get(int(i), rng=seed + int(i), augment=augment)
        img = crop_image(sample)
        S = img.shape[0]
        ax = axes[0, col]
        ax.imshow(img)
        if sample["has_3d"]:
            draw_skeleton(ax, sample["joints2d"].numpy(), size=S)
        tag = " (left, mirrored)" if sample["is_left"] else ""
        occ = float(sample["occlusion"])
        ax.set_title(_wrap_id(str(sample["sample_id"])) + tag + ("" if np.isnan(occ) else f"\nocclusion {occ:.2f}"),
                     fontsize=7)
        if mesh:
            ax2 = axes[1, col]
            if sample["has_3d"]:
                from handssca.render import overlay_mesh
                ax2.imshow(overlay_mesh(img, camera_vertices(sample, tr), faces, sample["K"].double().numpy()))
            else:
                ax2.imshow(img)
                ax2.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax2.transAxes)
        for a in axes[:, col]:
            a.set_xticks([])
            a.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _wrap_id(sid: str, width: int = 24) -> str:
    """A long "a/b/c/d" id on two lines, broken at the "/" nearest its middle."""
    if len(sid) <= width or "/" not in sid:
        return sid
    cuts = [i for i, ch in enumerate(sid) if ch == "/"]
    k = min(cuts, key=lambda i: abs(i - len(sid) / 2))
    return sid[: k + 1] + "\n" + sid[k + 1:]


def plot_occlusion(values: dict, bins: int = 10):
    """Histograms of occlusion fractions, one panel per dataset.

    Args:
        values: name -> (N,) fractions in [0, 1] (NaN: unknown, left out and counted).
    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(values), figsize=(3.2 * len(values), 2.6), squeeze=False, sharey=False)
    for ax, (name, v) in zip(axes[0], values.items()):
        v = np.asarray(v, dtype=np.float64)
        known = v[np.isfinite(v)]
        if known.size:
            ax.hist(known, bins=bins, range=(0.0, 1.0), color="#4363d8", edgecolor="white")
            ax.axvline(known.mean(), color="black", ls="--", lw=1)
        else:
            ax.text(0.5, 0.5, "unknown", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{name}: {known.size} samples, mean {known.mean():.2f}" if known.size else name, fontsize=9)
        ax.set_xlabel("fraction of the hand hidden")
    axes[0, 0].set_ylabel("samples")
    fig.tight_layout()
    return fig


def plot_articulation_spread(spreads: dict, plain: np.ndarray, title: str | None = None):
    """The standard deviation of each of MANO's 45 articulation values, per dataset, beside the
    plain pose distribution's.

    Args:
        spreads: name -> (45,) standard deviations (radians), MANO joint order, (x, y, z) per
            joint (``style_statistics(...)["spread"]``); name it with the data's kind.
        plain: (45,) the plain distribution's (``handssca.data.stats.plain_spread``).
        title: the figure's title.
    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    plain = np.asarray(plain, dtype=np.float64).reshape(45)
    fig, ax = plt.subplots(figsize=(10.0, 3.2))
    x = np.arange(45)
    ax.bar(x, plain, width=0.9, color="#d9d9d9", label="plain pose distribution")
    offsets = np.linspace(-0.25, 0.25, max(len(spreads), 1))
    for k, (name, sd) in enumerate(spreads.items()):
        ax.plot(x + offsets[k], np.asarray(sd, dtype=np.float64).reshape(45), "o", ms=3.5,
                color=f"C{k}", label=name)
    joints = MANO_JOINT_NAMES[1:]
    ax.set_xticks(3 * np.arange(15) + 1)
    ax.set_xticklabels(joints, rotation=45, ha="right", fontsize=8)
    for j in range(1, 15):
        ax.axvline(3 * j - 0.5, color="white", lw=1.5)
    ax.set_xlim(-0.7, 44.7)
    ax.set_ylabel("std (rad)")
    ax.set_xlabel("articulation value (x, y, z of each joint's axis-angle)")
    ax.legend(fontsize=8, ncol=len(spreads) + 1, loc="upper left")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def variety_table(stats: dict, plain: np.ndarray):
    """The hands' variety per dataset as a :class:`handssca.report.Table`.

    Args:
        stats: name -> (kind "synthetic" | "real", ``handssca.data.stats.style_statistics``).
        plain: (45,) the plain distribution's standard deviations.
    Returns:
        the table: samples, the mean-articulation constant's PA-MPJPE (mm), the median over the
        articulation values of their spread relative to the plain distribution's, the mean
        occluded fraction; the caption says SYNTHETIC for synthetic data.
    """
    plain = np.asarray(plain, dtype=np.float64).reshape(45)
    moving = plain > 0.01  # values the plain distribution moves (the others are nearly fixed)
    rows = []
    for name, (kind, st) in stats.items():
        ratio = np.median(np.asarray(st["spread"])[moving] / plain[moving])
        occ = np.asarray(st["occlusion"], dtype=np.float64)
        occ_text = f"{np.nanmean(occ):.2f}" if np.isfinite(occ).any() else "unknown"
        rows.append([name, kind.upper() if kind == "synthetic" else kind, str(st["n"]),
                     f"{st['constant_pa_mpjpe']:.1f}", f"{ratio:.2f}", occ_text])
    kinds = {kind for kind, _ in stats.values()}
    label = "SYNTHETIC data: " if kinds == {"synthetic"} else ("partly SYNTHETIC data: " if "synthetic" in kinds
                                                               else "")
    notes = ["Constant: one MANO hand of the samples' mean articulation and mean shape, no global "
             "rotation, scored against every sample with PA-MPJPE (official similarity fit). A "
             "network has to beat it to have read anything from the image.",
             "Spread: per articulation value, its standard deviation over the samples divided by "
             "the plain pose distribution's; the median over the values the plain distribution "
             "moves."]
    return Table(["dataset", "data", "samples", "constant PA-MPJPE (mm)", "spread / plain", "occluded"],
                 rows, f"{label}how much the training hands vary", notes)


__all__ = ["draw_skeleton", "plot_samples", "plot_occlusion", "occlusion_values", "camera_vertices",
           "crop_image", "joint_color", "FINGER_COLORS", "plot_articulation_spread", "variety_table"]
