"""The effective receptive field (ERF) of the hand features H: the paper's Fig. 1.

The paper (Section 1 and 3.3) shows "effective receptive fields" of the FPN baseline,
self-attention, SSA and SSCA after Luo et al. 2016 ("Understanding the Effective Receptive Field
in Deep Convolutional Neural Networks", the paper's reference [49]), without saying how they were
computed. This module computes them by Luo et al.'s gradient method:

1. Seed a gradient of 1 at the *centre location* (r0, c0) = (h // 2, w // 2) of the map
   H (B, C, h, w) and 0 everywhere else, in every one of the C channels; that is, take the
   gradient of the scalar ``y_b = sum_c H[b, c, r0, c0]``. Luo et al. seed a single output unit;
   over C channels we seed them all at once (the gradient of the channel sum). Channels whose
   gradients have opposite signs can cancel at an input pixel; seeding each channel separately
   would avoid it at C times the cost, and we do not.
2. Back-propagate to the input image I (B, 3, S, S): ``g_b = dy_b / dI_b``.
3. Take the absolute value and sum over the three colour channels: ``e_b = sum_rgb |g_b|``,
   (S, S) per image. (Some ERF plots use ReLU(g) instead of ``|g|``; we keep ``|g|``, Luo et al.'s
   magnitude.)
4. Average over the B images and normalise to a distribution (the map sums to 1): the ERF,
   (S, S).

The network runs in eval mode (BatchNorm with its running statistics), so the images of a batch
do not interact and the gradient of ``sum_b y_b`` with respect to I_b is image b's own gradient.

H is ``model.attention(model.backbone(I))`` of a :class:`handssca.models.HandSSCA`: the output of
the attention block (for the FPN baseline, ``attention="none"``, H = F). Any other module that
maps (B, 3, S, S) to a (B, C, h, w) map can be measured too.

Scalar summaries, so that variants compare by a number as well as by a picture:

- :func:`erf_radius`: the radius (input pixels) of the smallest disc about the centre location
  that holds a given fraction of the ERF's mass (r50, r90);
- :func:`erf_area`: the smallest share of the image area whose pixels hold that fraction
  (wherever they lie).

Glossary: I input image (B, 3, S, S); F the FPN map and H the hand features (B, C, S/8, S/8);
h = w = S/8 the side of H; (r0, c0) the centre location in H; (x0, y0) its centre in input
pixels, ``((c0 + 0.5) S / w - 0.5, (r0 + 0.5) S / h - 0.5)`` (pixel centres at integers).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

Tensor = torch.Tensor

#: the fractions of the ERF's mass summarised by default (r50, r90, area50, area90)
DEFAULT_FRACTIONS = (0.5, 0.9)


@dataclass
class ERF:
    """An effective receptive field.

    Attributes:
        map: (S, S) float64, non-negative, sums to 1: the image-averaged ``|gradient|`` (step 4).
        per_image: (B, S, S) float64, each image's ``|gradient|`` map normalised to sum 1 (for the
            spread of a scalar over images); all zeros for an image whose gradient vanished.
        location: (r0, c0), the output location in H (rows, columns of the h x w map).
        centre: (x0, y0), that location's centre in input pixels.
        feature_size: (h, w) of the measured map.
        n_images: B.
        raw_scale: mean over images of the total ``|gradient|`` mass before normalising (how
            strongly the location depends on the image at all).
    """

    map: np.ndarray
    per_image: np.ndarray
    location: Tuple[int, int]
    centre: Tuple[float, float]
    feature_size: Tuple[int, int]
    n_images: int
    raw_scale: float

    @property
    def size(self) -> int:
        """S, the side of the input."""
        return int(self.map.shape[0])

    def summary(self, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> Dict[str, float]:
        """:func:`erf_summary` of this ERF."""
        return erf_summary(self, fractions)


def hand_features(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """The function I -> H of a HandSSCA network: ``model.attention(model.backbone(I))``.

    I (B, 3, S, S) ImageNet-normalised -> H (B, C, S/8, S/8), the hand features of Section 3.1
    (for ``attention="none"``, H = F). Raises ValueError for a module without ``backbone`` and
    ``attention`` submodules.
    """
    if not (hasattr(model, "backbone") and hasattr(model, "attention")):
        raise ValueError(f"hand_features: expected a HandSSCA network (with .backbone and "
                         f".attention), got {type(model).__name__}")

    def features(images: Tensor) -> Tensor:
        return model.attention(model.backbone(images))

    return features


def _expected_size(model: nn.Module) -> Optional[int]:
    cfg = getattr(model, "config", None)
    s = getattr(cfg, "input_size", None)
    return int(s) if s is not None else None


def check_images(images, size: Optional[int] = None, where: str = "erf") -> Tensor:
    """Validate a batch of input images: a float tensor (B, 3, S, S), B >= 1, S = ``size``
    when given. Returns it; raises ValueError naming the expected shape otherwise."""
    s = "S" if size is None else str(size)
    expected = f"(B, 3, {s}, {s}) float tensor (ImageNet-normalised images)"
    if not isinstance(images, Tensor):
        raise ValueError(f"{where}: expected a {expected}, got {type(images).__name__}")
    ok = (images.dim() == 4 and images.shape[0] >= 1 and images.shape[1] == 3
          and images.shape[2] == images.shape[3] and images.is_floating_point()
          and (size is None or images.shape[2] == size))
    if not ok:
        raise ValueError(f"{where}: expected a {expected}, got shape {tuple(images.shape)} "
                         f"dtype {images.dtype}")
    return images


def centre_location(h: int, w: int) -> Tuple[int, int]:
    """(r0, c0) = (h // 2, w // 2): the centre location of an h x w map (for even sides, the
    lower-right of the four central locations)."""
    return int(h) // 2, int(w) // 2


def location_centre(location: Tuple[int, int], feature_size: Tuple[int, int],
                    size: int) -> Tuple[float, float]:
    """The centre (x0, y0), in input pixels, of location (r, c) of an h x w map over an S x S
    input (pixel centres at integers): ``((c + 0.5) S / w - 0.5, (r + 0.5) S / h - 0.5)``."""
    (r, c), (h, w) = location, feature_size
    return (c + 0.5) * size / w - 0.5, (r + 0.5) * size / h - 0.5


def input_gradients(net: Callable[[Tensor], Tensor], images: Tensor,
                    location: Optional[Tuple[int, int]] = None
                    ) -> Tuple[Tensor, Tuple[int, int], Tuple[int, int]]:
    """Steps 1-2: the gradient of ``y_b = sum_c out[b, c, r0, c0]`` with respect to each image.

    Args:
        net: I (B, 3, S, S) -> a map (B, C, h, w) (e.g. :func:`hand_features`), whose images do
            not interact (eval mode).
        images: I, (B, 3, S, S) float.
        location: (r0, c0) in the output map (default: :func:`centre_location`).

    Returns:
        (g (B, 3, S, S) the gradients, (r0, c0), (h, w)).
    """
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():  # also inside a caller's no_grad()
        out = net(x)
    if not isinstance(out, Tensor) or out.dim() != 4 or out.shape[0] != x.shape[0]:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"erf: the network must map (B, 3, S, S) to a (B, C, h, w) map, "
                         f"got {got}")
    h, w = int(out.shape[2]), int(out.shape[3])
    r0, c0 = centre_location(h, w) if location is None else (int(location[0]), int(location[1]))
    if not (0 <= r0 < h and 0 <= c0 < w):
        raise ValueError(f"erf: location {(r0, c0)} lies outside the {h} x {w} output map")
    with torch.enable_grad():
        y = out[:, :, r0, c0].float().sum()
        (g,) = torch.autograd.grad(y, x)
    return g, (r0, c0), (h, w)


class _EvalMode:
    """Put a module in eval mode for the duration of a ``with`` block, then restore its flags."""

    def __init__(self, module):
        self.module = module if isinstance(module, nn.Module) else None

    def __enter__(self):
        if self.module is not None:
            self.flags = {m: m.training for m in self.module.modules()}
            self.module.eval()
        return self

    def __exit__(self, *exc):
        if self.module is not None:
            for m, flag in self.flags.items():
                m.train(flag)
        return False


def effective_receptive_field(model: Union[nn.Module, Callable[[Tensor], Tensor]], images: Tensor,
                              location: Optional[Tuple[int, int]] = None, batch_size: int = 8,
                              features: Optional[Callable[[Tensor], Tensor]] = None) -> ERF:
    """The gradient ERF of Luo et al. 2016 of one location of H (module docstring, steps 1-4).

    Args:
        model: a :class:`handssca.models.HandSSCA` (measured at H, :func:`hand_features`), or
            any module/callable mapping (B, 3, S, S) to (B, C, h, w) (measured at its output).
        images: I, (B, 3, S, S) float, ImageNet-normalised; S the model's input size.
        location: (r0, c0) in the h x w map (default: the centre, :func:`centre_location`).
        batch_size: images per backward pass (memory only; the result does not depend on it).
        features: the function to measure instead of H (overrides the choice above).

    Returns:
        an :class:`ERF`: ``map`` (S, S) summing to 1, ``per_image`` (B, S, S).

    Raises:
        ValueError: images not a (B, 3, S, S) float tensor (S = the model's input size), or the
            network's output is not a (B, C, h, w) map, or the location lies outside it.
    """
    size = _expected_size(model) if isinstance(model, nn.Module) else None
    check_images(images, size)
    if int(batch_size) < 1:
        raise ValueError(f"erf: batch_size must be a positive integer, got {batch_size}")
    net = features
    if net is None:
        net = hand_features(model) if hasattr(model, "attention") else model
    dev = next((p.device for p in model.parameters()), torch.device("cpu")) \
        if isinstance(model, nn.Module) else images.device
    dtype = next((p.dtype for p in model.parameters()), images.dtype) \
        if isinstance(model, nn.Module) else images.dtype
    maps, loc, fsize = [], None, None
    with _EvalMode(model):
        for k in range(0, images.shape[0], int(batch_size)):
            chunk = images[k:k + int(batch_size)].to(dev, dtype)
            g, loc, fsize = input_gradients(net, chunk, location)
            maps.append(g.detach().abs().sum(1).double().cpu())  # (b, S, S), step 3
    e = torch.cat(maps).numpy()  # (B, S, S)
    S = int(images.shape[-1])
    mass = e.reshape(len(e), -1).sum(1)
    per_image = np.zeros_like(e)
    nz = mass > 0
    per_image[nz] = e[nz] / mass[nz, None, None]
    mean = e.mean(0)
    total = mean.sum()
    erf = mean / total if total > 0 else np.zeros_like(mean)
    return ERF(map=erf, per_image=per_image, location=tuple(loc), feature_size=tuple(fsize),
               centre=location_centre(loc, fsize, S), n_images=int(len(e)),
               raw_scale=float(mass.mean()))


def _check_map(erf_map, where: str) -> np.ndarray:
    m = np.asarray(erf_map.map if isinstance(erf_map, ERF) else erf_map, dtype=np.float64)
    if m.ndim != 2 or not np.all(np.isfinite(m)) or np.any(m < 0):
        raise ValueError(f"{where}: expected a non-negative finite (S, S) map, got shape "
                         f"{m.shape}")
    return m


def _check_fraction(fraction: float, where: str) -> float:
    q = float(fraction)
    if not 0.0 < q <= 1.0:
        raise ValueError(f"{where}: fraction must be in (0, 1], got {fraction}")
    return q


def erf_radius(erf_map, centre: Optional[Tuple[float, float]] = None,
               fraction: float = 0.5) -> float:
    """The radius r_q (input pixels) of the smallest disc about ``centre`` holding ``fraction``
    q of the ERF's mass.

    Args:
        erf_map: an :class:`ERF` or an (S, S) non-negative map (need not be normalised).
        centre: (x0, y0) in pixels (default: the ERF's own centre, or the image centre).
        fraction: q in (0, 1].

    Returns:
        r_q, the distance of the pixel at which the cumulative mass, sorted by distance from the
        centre, first reaches q (NaN for an all-zero map).
    """
    m = _check_map(erf_map, "erf_radius")
    q = _check_fraction(fraction, "erf_radius")
    if centre is None:
        centre = erf_map.centre if isinstance(erf_map, ERF) else ((m.shape[1] - 1) / 2,
                                                                 (m.shape[0] - 1) / 2)
    total = m.sum()
    if total <= 0:
        return float("nan")
    yy, xx = np.indices(m.shape)
    d = np.hypot(xx - centre[0], yy - centre[1]).ravel()
    order = np.argsort(d, kind="stable")
    cum = np.cumsum(m.ravel()[order]) / total
    k = int(np.searchsorted(cum, q - 1e-12))
    return float(d[order][min(k, len(d) - 1)])


def erf_area(erf_map, fraction: float = 0.5) -> float:
    """The smallest share of the image area (0..1) whose pixels hold ``fraction`` q of the
    ERF's mass: pixels sorted by their mass, largest first, counted until q is reached.
    NaN for an all-zero map."""
    m = _check_map(erf_map, "erf_area")
    q = _check_fraction(fraction, "erf_area")
    total = m.sum()
    if total <= 0:
        return float("nan")
    v = np.sort(m.ravel())[::-1]
    k = int(np.searchsorted(np.cumsum(v) / total, q - 1e-12)) + 1
    return float(min(k, v.size) / v.size)


def erf_summary(erf: ERF, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> Dict[str, float]:
    """Scalars of an ERF: for each fraction q (as a percentage p), ``r{p}`` (radius in input
    pixels, of the averaged map), ``r{p}_rel`` (the same over S), ``r{p}_sd`` (standard
    deviation of the per-image radii), ``area{p}`` (share of the image area) and ``n_images``."""
    if not isinstance(erf, ERF):
        raise ValueError(f"erf_summary: expected an ERF, got {type(erf).__name__}")
    out: Dict[str, float] = {}
    for q in fractions:
        p = int(round(100 * _check_fraction(q, "erf_summary")))
        r = erf_radius(erf, erf.centre, q)
        per = [erf_radius(m, erf.centre, q) for m in erf.per_image if m.sum() > 0]
        out[f"r{p}"] = r
        out[f"r{p}_rel"] = r / erf.size
        out[f"r{p}_sd"] = float(np.std(per)) if len(per) > 1 else float("nan")
        out[f"area{p}"] = erf_area(erf, q)
    out["n_images"] = erf.n_images
    return out


def radial_profile(erf_map, centre: Optional[Tuple[float, float]] = None,
                   bin_width: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """The cumulative mass of the ERF within radius r of the centre, for r = 0, bin_width, ...

    Returns:
        (radii (R,), cumulative fraction (R,) rising to 1).
    """
    m = _check_map(erf_map, "radial_profile")
    if centre is None:
        centre = erf_map.centre if isinstance(erf_map, ERF) else ((m.shape[1] - 1) / 2,
                                                                 (m.shape[0] - 1) / 2)
    if bin_width <= 0:
        raise ValueError(f"radial_profile: bin_width must be positive, got {bin_width}")
    yy, xx = np.indices(m.shape)
    d = np.hypot(xx - centre[0], yy - centre[1])
    radii = np.arange(0.0, d.max() + bin_width, bin_width)
    total = m.sum()
    cum = np.array([m[d <= r].sum() for r in radii]) / (total if total > 0 else 1.0)
    return radii, cum


def initial_network(run) -> nn.Module:
    """The network of a trained run as it was before its first step: the same spec (backbone,
    C, S, attention variant) and hand model, initialised from the same seed stream the engine
    uses (``derive_seed(seed, -1, "init")``, then the mean-hand start of the MANO head when the
    run's settings asked for it). Eval mode, on the run's device. A run started from ImageNet
    weights records only their file's name and digest: its initial backbone is not rebuilt.

    Args:
        run: a loaded run (:func:`handssca.engine.load_run`) trained here (imported weights
            have no initial network: ValueError).
    """
    from handssca.engine.factory import init_mean_hand
    from handssca.engine.randomness import derive_seed, seed_everything
    from handssca.models import build_model

    if not (hasattr(run, "spec") and hasattr(run, "model")):
        raise ValueError(f"initial_network: expected a loaded run (handssca.engine.load_run), "
                         f"got {type(run).__name__}")
    if run.seed is None:
        raise ValueError(f"initial_network: {run.path} holds imported weights, trained elsewhere "
                         f"from an initialisation it does not record")
    seed_everything(derive_seed(int(run.seed), -1, "init"))
    model = build_model(**run.spec.to_dict(), hand_model=run.model.hand_model)
    if (run.config.get("train") or {}).get("init_mean_hand"):
        init_mean_hand(model)
    return model.to(run.device).eval()


def erf_table(summaries: Mapping[Tuple[str, str], Mapping[str, float]], rows: Sequence[str],
              states: Sequence[str], fraction: float = 0.5, caption: str = "",
              row_labels: Optional[Mapping[str, str]] = None, notes: Sequence[str] = ()):
    """A :class:`handssca.report.Table` of ERF scalars: one row per variant, for each state
    (e.g. "init", "trained") the radius r_q in pixels (± sd over images) and the area share.

    Args:
        summaries: {(variant, state): :func:`erf_summary` dict}; a missing pair says "not run".
        fraction: q, the mass fraction whose radius and area are shown.
    """
    from handssca.report import Table

    p = int(round(100 * _check_fraction(fraction, "erf_table")))
    header = ["variant"]
    for s in states:
        header += [f"r{p} px ({s})", f"area{p} % ({s})"]
    body = []
    for r in rows:
        cells = [(row_labels or {}).get(r, r)]
        for s in states:
            d = summaries.get((r, s))
            if d is None:
                cells += ["not run", "not run"]
                continue
            sd = d.get(f"r{p}_sd", float("nan"))
            cells.append(f"{d[f'r{p}']:.1f}" + ("" if not np.isfinite(sd) else f" ± {sd:.1f}"))
            cells.append(f"{100 * d[f'area{p}']:.1f}")
        body.append(cells)
    return Table(header=header, rows=body, caption=caption, notes=list(notes))


# ----------------------------------------------------------------------------------------------
# drawing
# ----------------------------------------------------------------------------------------------
def _display(m: np.ndarray, scale: str) -> np.ndarray:
    if scale == "linear":
        return m / max(m.max(), 1e-30)
    if scale == "log":
        # log10 of the mass relative to the peak, floored at 1e-4 of it (four decades)
        return np.log10(np.maximum(m / max(m.max(), 1e-30), 1e-4))
    raise ValueError(f"scale must be 'linear' or 'log', got {scale!r}")


def plot_erf_grid(erfs: Mapping[Tuple[str, str], ERF], rows: Sequence[str], cols: Sequence[str],
                  row_labels: Optional[Mapping[str, str]] = None,
                  col_labels: Optional[Mapping[str, str]] = None, scale: str = "log",
                  fraction: float = 0.5, title: Optional[str] = None, cell: float = 2.3):
    """A grid of ERF maps: one row per ``rows`` key, one column per ``cols`` key.

    Args:
        erfs: {(row, col): ERF}; a missing pair leaves its panel empty ("not run").
        scale: "log" (log10 of the mass over the peak, four decades, as ERFs are usually
            shown) or "linear" (mass over the peak).
        fraction: a circle of radius r_q (:func:`erf_radius`) is drawn about the centre, and
            r_q is written in the panel.
        title: the figure's title.

    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    fig, axes = plt.subplots(len(rows), len(cols), figsize=(cell * len(cols) + 0.8,
                                                            cell * len(rows) + 0.4),
                             squeeze=False)
    vmin = -4.0 if scale == "log" else 0.0
    im = None
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            e = erfs.get((r, c))
            if e is None:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
            else:
                im = ax.imshow(_display(e.map, scale), cmap="inferno", vmin=vmin, vmax=0.0
                               if scale == "log" else 1.0)
                rq = erf_radius(e, e.centre, fraction)
                ax.add_patch(Circle(e.centre, rq, fill=False, color="cyan", lw=0.8, ls="--"))
                ax.text(0.03, 0.97, f"r{int(round(100 * fraction))} = {rq:.1f} px", color="white",
                        fontsize=7, ha="left", va="top", transform=ax.transAxes)
            if i == 0:
                ax.set_title((col_labels or {}).get(c, c), fontsize=9)
            if j == 0:
                ax.set_ylabel((row_labels or {}).get(r, r), fontsize=9)
    if im is not None:
        cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
        cb.set_label("log10(mass / peak)" if scale == "log" else "mass / peak", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_radial_profiles(erfs: Mapping[str, ERF], title: Optional[str] = None, ax=None):
    """Cumulative ERF mass against the radius about the centre, one curve per ERF.

    Args:
        erfs: {label: ERF}.
    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.4))
    else:
        fig = ax.figure
    for label, e in erfs.items():
        r, cum = radial_profile(e)
        ax.plot(r, cum, label=label)
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    ax.axhline(0.9, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("radius about the centre location (input pixels)")
    ax.set_ylabel("share of the ERF mass within")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


__all__ = ["ERF", "effective_receptive_field", "hand_features", "input_gradients",
           "centre_location", "location_centre", "check_images", "erf_radius", "erf_area",
           "erf_summary", "radial_profile", "initial_network", "erf_table", "plot_erf_grid",
           "plot_radial_profiles", "DEFAULT_FRACTIONS"]
