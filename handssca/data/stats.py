"""How much a dataset's hands vary: articulation spreads, the mean-articulation constant, occlusion.

Three numbers describe whether a set of hands is worth learning from (the data chapter reports
them per dataset, and the synthetic generator is tuned with them):

- the **spread** of each of MANO's 45 articulation values (axis-angle, radians; the standard
  deviation over the samples), beside the spread of the procedural hand's plain pose
  distribution (``handssca.hand.pose_space``);
- the **mean-articulation constant**: one MANO hand of the samples' mean articulation and mean
  shape, without global rotation, scored against every sample with PA-MPJPE (the official
  similarity Procrustes fit, book/datasets_and_metrics.md, section Procrustes alignment, so the
  missing rotation, scale and position cost
  nothing). A network must beat it to have read anything from the image; when the hands barely
  vary, it is close to every sample and a network learns little;
- the **occluded fraction** of the hand per image, where the dataset records it (synthetic data:
  ``synth_info.json``).

Left hands (DexYCB) are mirrored into right hands first, as the loaders hand them to the network
(``handssca.data.geometry.mirror_points`` / ``mirror_pose``). Shapes: n samples, K = 21 joints in
the dataset's F order, V = 778 vertices.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from handssca.hand import HandLayer
from handssca.hand.pose_space import N_SAMPLES, SEED, sample_articulation
from handssca.metrics import pa_mpjpe

from .dataset import hand_model_for
from .errors import CorruptSampleError
from .geometry import mirror_points, mirror_pose


def hand_annotations(ds, max_samples: Optional[int] = None) -> dict:
    """The hand annotations of a dataset's samples (``ds.raw``: no images read).

    Args:
        ds: a ``FreiHAND``, ``HO3D`` or ``DexYCB`` (samples without 3D ground truth, or with an
            unreadable annotation, are left out).
        max_samples: read at most this many samples, evenly spaced (None: all).

    Returns:
        {"articulation": (n, 45) MANO articulation offsets from hands_mean (flat_hand_mean=False),
        "shape": (n, 10) betas, "joints": (n, K, 3) root-relative joints (metres, camera frame),
        "index": (n,) the dataset indices read}, left hands mirrored into right hands; float64.
    """
    total = len(ds)
    idx = np.arange(total) if max_samples is None or max_samples >= total else \
        np.unique(np.linspace(0, total - 1, int(max_samples)).round().astype(int))
    arts, shapes, joints, kept = [], [], [], []
    for i in idx:
        try:
            raw = ds.raw(int(i))
        except CorruptSampleError:
            continue
        if not raw.has_3d:
            continue
        X = np.asarray(raw.joints3d, np.float64)
        X = X - X[0]
        pose = np.asarray(raw.pose, np.float64)
        if raw.is_left:
            X, pose = mirror_points(X), mirror_pose(pose)
        arts.append(pose[3:])
        shapes.append(np.asarray(raw.shape, np.float64))
        joints.append(X)
        kept.append(int(i))
    if not kept:
        raise ValueError(f"{getattr(ds, 'name', 'dataset')}: no sample with 3D ground truth among the "
                         f"{len(idx)} read (expected a training split with annotations)")
    return {"articulation": np.stack(arts), "shape": np.stack(shapes), "joints": np.stack(joints),
            "index": np.asarray(kept)}


def mean_articulation_hand(articulation: np.ndarray, shape: np.ndarray, hand_model,
                           fingertips: str = "manopth") -> dict:
    """The hand of a mean articulation and shape, without global rotation, through the MANO layer.

    Args:
        articulation: (45,) articulation offsets from hands_mean (flat_hand_mean=False).
        shape: (10,) betas.
        hand_model: a right ``HandModel`` (``handssca.hand.load_hand_model``).
        fingertips: the fingertip convention of the joints ("manopth", "freihand", "ho3d").

    Returns:
        {"joints": (21, 3), "vertices": (778, 3)}, root-relative (the wrist at 0), metres.
    """
    layer = HandLayer(hand_model, fingertips=fingertips).double()
    pose = torch.zeros(1, 48, dtype=torch.float64)
    pose[0, 3:] = torch.as_tensor(np.asarray(articulation, np.float64).reshape(45))
    beta = torch.as_tensor(np.asarray(shape, np.float64).reshape(1, 10))
    with torch.no_grad():
        out = layer(pose, beta)
    j = out["joints"][0].numpy()
    return {"joints": j - j[:1], "vertices": out["vertices"][0].numpy() - j[:1]}


def constant_errors(annotations: dict, hand_model, fingertips: str = "manopth") -> np.ndarray:
    """Per-sample PA-MPJPE (mm) of the mean-articulation constant (module docstring) against the
    samples' joints: (n,). ``annotations`` as :func:`hand_annotations` returns them."""
    hand = mean_articulation_hand(annotations["articulation"].mean(0), annotations["shape"].mean(0),
                                  hand_model, fingertips)
    gt = annotations["joints"]
    return pa_mpjpe(np.broadcast_to(hand["joints"], gt.shape).copy(), gt, reduce=False)


def occlusion_values(dataset) -> np.ndarray:
    """Every sample's occlusion fraction (N,), read from the dataset's side information (no
    images; NaN where unknown, e.g. real data)."""
    occ = getattr(dataset, "occlusion", None)
    if occ is None:
        return np.full(len(dataset), np.nan)
    occ = np.asarray(occ, dtype=np.float64)
    if hasattr(dataset, "ids"):  # FreiHAND: per unique sample
        occ = np.tile(occ[dataset.ids], len(dataset.versions))
    return occ[: len(dataset)]


def plain_spread(n: int = N_SAMPLES, seed: int = SEED) -> np.ndarray:
    """(45,) the standard deviation of each articulation value (radians) under the procedural
    hand's plain pose distribution (the draws ``pose_pca`` is computed from by default)."""
    return sample_articulation(n, np.random.default_rng(seed)).std(0)


def style_statistics(ds, hand_model=None, max_samples: Optional[int] = None) -> dict:
    """The three statistics of the module docstring for one dataset split.

    Args:
        ds: the dataset split (a training split: it carries the annotations).
        hand_model: the right hand model of the annotations (default: the one the dataset
            folder names, ``hand_model_for``).
        max_samples: see :func:`hand_annotations`.

    Returns:
        {"n": samples read, "constant_pa_mpjpe": mean over samples (mm), "constant_errors": (n,)
        mm, "spread": (45,) radians, "occlusion": (N,) per image of the split (NaN: unknown)}.
    """
    ann = hand_annotations(ds, max_samples)
    model = hand_model if hand_model is not None else hand_model_for(ds.root, True)
    errors = constant_errors(ann, model, getattr(ds, "fingertips", "manopth"))
    return {"n": len(ann["index"]), "constant_pa_mpjpe": float(errors.mean()), "constant_errors": errors,
            "spread": ann["articulation"].std(0), "occlusion": occlusion_values(ds)}


__all__ = ["hand_annotations", "mean_articulation_hand", "constant_errors", "occlusion_values", "plain_spread",
           "style_statistics"]
